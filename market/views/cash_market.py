"""The cash market page for traders and its HTMX partials.

Every partial lives in `market/cash_market.html` as a `{% partialdef %}` named after the
DOM id it replaces. Each endpoint answers an HTMX request with its partial and any other
request with the whole page, so the page works without JavaScript (plain form posts and
redirects). Placing or cancelling answers with an `HX-Trigger: market-changed` header; the
book, balances and My Orders listen for it.

The order book is polled; its ETag is the market's `book_version`, the depth and the
grouping, checked before anything else is read, so an unchanged book costs one query and a
`304` (none at all on PostgreSQL, where `market.live` knows the versions and the sessions
in memory). The book's HTML is the same for every trader and cached per version; the
trader's own orders are marked by a small per-trader block beside it (`book-own-marks`, a
style sheet that highlights their levels), so nothing of one trader's ever enters the
shared HTML. The version covers those marks too: a trader's resting orders are part of the
book, and every change to them bumps it.

The price chart (`price_chart`) is polled the same way; its ETag is the interval, the
market's newest trade id and the current slot (a new interval starts a new candle).
"""

import time
from functools import wraps
from itertools import zip_longest

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags, quote_etag
from django.utils.translation import get_language
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from config.http import client_ip
from config.throttle import throttled
from market import live, selectors
from market.core import limits
from market.core.book import GROUPINGS
from market.core.candles import DEFAULT_INTERVAL, INTERVALS, interval_seconds, slot_index
from market.core.money import (
    EUR,
    MAX_PRICE,
    describe,
    parse_amount,
    parse_price,
    parse_quantity,
)
from market.forms import OrderAmendForm, OrderEntryForm
from market.models import Market, Order
from market.services.holders import trader_holder_for
from market.services.orders import (
    order_amend,
    order_cancel,
    order_for_amend,
    order_place,
    orders_cancel_all,
    released_by_asset,
)
from market.validation import IdempotencyKeyReused

PAGE = "market/cash_market.html"
AMEND_PAGE = "market/amend_order.html"
BOOK_DEPTH = 50
BOOK_DEPTHS = (10, 20, 50)  # the depth selector's choices (any 1..MAX_DEPTH is accepted)
CHART_POLL_EVERY = 10  # seconds
RECENT_TRADES = 40
MY_ORDERS = 50
TABS = ("open", "history")
ORDER_TABS = (("open", "Open"), ("history", "History"))
MARKET_CHANGED = "market-changed"
BOOK_CHANGED = "book-changed"


# --- helpers ------------------------------------------------------------------------------


def trader_required(view):
    """Logged-in users only. An HTMX request whose session has expired is sent to the
    login page as a whole (HX-Redirect), not swapped into a partial."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.htmx:
                return HttpResponseClientRedirect(
                    f"{reverse('login')}?next={request.htmx.current_url_abs_path or '/'}"
                )
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper


def poll_authenticated(view):
    """Authenticate a poll from the process's memory of its session when the live feed
    vouches for it (`market.live`: PostgreSQL notifies every session and user change);
    otherwise against the database, as any view, and remember the session for next time.

    Only for views that show every trader the same thing (the book): a session that was
    logged out a moment ago can at worst see one more copy of the public book. Put it
    outside `trader_required`, which then finds `request.user` already set.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        # Only the HTMX poll: without HX-Request the view renders the whole page, with the
        # trader's own balances and orders.
        user = live.feed.session_user(session_key) if _is_htmx_poll(request) else None
        if user is not None:
            request.user = user
            return view(request, *args, **kwargs)
        since = live.feed.mark()
        response = view(request, *args, **kwargs)
        if (
            session_key
            and request.user.is_authenticated
            and request.session.session_key == session_key
        ):
            live.feed.remember_session(
                session_key,
                request.user,
                expires_in=request.session.get_expiry_age(),
                since=since,
            )
        return response

    return wrapper


def _market_code(code: str) -> str:
    """A market code from the URL, upper case; 404 for text no market code can be (only
    a possible code reaches the database)."""
    code = code.upper()
    if not (code.isascii() and code.isalnum() and len(code) <= 12):
        raise Http404("No such market.")
    return code


def _market(code: str) -> Market:
    market = Market.objects.filter(code=_market_code(code)).first()
    if market is None:
        raise Http404("No such market.")
    return market


def _is_htmx_poll(request) -> bool:
    # `request.htmx` would parse every header into `request.headers`; on the poll, the
    # hottest path of the site, the two headers it needs are read from META directly.
    return request.META.get("HTTP_HX_REQUEST") == "true"


def _book_etag(version: int, depth: int, grouping: int = 1) -> str:
    shape = f"{depth}" if grouping == 1 else f"{depth}-x{grouping}"
    return quote_etag(f"book-{version}-{shape}")


def _grouping(request) -> int:
    """The book's grouping (steps of this many ticks): one of `GROUPINGS`, else 1."""
    value = request.GET.get("group", "1") if request.META.get("QUERY_STRING") else "1"
    return int(value) if value in {str(choice) for choice in GROUPINGS} else 1


def _interval(request) -> str:
    interval = request.GET.get("interval", DEFAULT_INTERVAL)
    return interval if interval in INTERVALS else DEFAULT_INTERVAL


def _chart_etag(interval: str, last_trade_id: int, now) -> str:
    return quote_etag(
        f"chart-{interval}-{last_trade_id}-{slot_index(now, interval_seconds(interval))}"
    )


def _book_query(depth: int, grouping: int) -> str:
    """The book poll's query string for a depth and grouping ("" for the defaults)."""
    params = []
    if depth != BOOK_DEPTH:
        params.append(f"depth={depth}")
    if grouping != 1:
        params.append(f"group={grouping}")
    return f"?{'&'.join(params)}" if params else ""


def _depth(request) -> int:
    if not request.META.get("QUERY_STRING"):
        return BOOK_DEPTH
    try:
        depth = int(request.GET.get("depth", BOOK_DEPTH))
    except ValueError:
        return BOOK_DEPTH
    return max(1, min(depth, selectors.MAX_DEPTH))


def _tab(request) -> str:
    tab = request.GET.get("tab", "open")
    return tab if tab in TABS else "open"


def _render_partial(request, name: str, context, *, oob: bool) -> str:
    return render_to_string(f"{PAGE}#{name}", {**context, "oob": oob}, request=request)


def _render_partials(request, main: str | None, context, *, oob=(), rendered=None) -> HttpResponse:
    """The `main` partial (swapped into the requesting element's target) followed by
    `oob` partials, swapped by their ids (hx-swap-oob). `rendered` maps partial names to
    HTML already rendered (see `_book_fragments`)."""
    rendered = rendered or {}
    html = []
    parts = ([(main, False)] if main else []) + [(name, True) for name in oob]
    for name, is_oob in parts:
        if name in rendered:
            html.append(rendered[name])
        else:
            html.append(_render_partial(request, name, context, oob=is_oob))
    response = HttpResponse("".join(html))
    patch_vary_headers(response, ["HX-Request"])
    return response


def _book_fragments(request, context) -> dict[str, str]:
    """The order-book and depth-chart partials of a poll, through Django's cache.

    Both are a function of the book alone (market, `book_version`, depth), the same for
    every trader, and they are most of a poll's rendering time (100 levels, the chart), so
    each process renders them once per book version, like `selectors.cached_order_book`
    keeps the book itself. Nothing request- or user-specific may go into these partials.
    """
    book = context["book"]
    key = (
        f"market:book-html:{book.market_code}:{book.version}:{context['book_depth']}:"
        f"{book.grouping}:{get_language()}"
    )
    fragments = caches["book"].get(key)
    if fragments is None:
        fragments = {
            "order-book": _render_partial(request, "order-book", context, oob=False),
            "depth-chart": _render_partial(request, "depth-chart", context, oob=True),
        }
        caches["book"].set(key, fragments, selectors.BOOK_CACHE_TIMEOUT)
    return fragments


def _base_context(request, market: Market) -> dict:
    codes = [other.code for other in selectors.markets_list()]
    return {
        "market": market,
        "market_code": market.code,
        "markets": [(code, f"{code} / {EUR}") for code in codes],
        "order_tabs": ORDER_TABS,
        "balance_assets": [EUR, *codes],
    }


def _last_tick(trades) -> str:
    """ "up" / "down" / "flat": the newest trade's price against the one before it."""
    if len(trades) < 2 or trades[0].price == trades[1].price:
        return "flat"
    return "up" if trades[0].price > trades[1].price else "down"


def _market_data(market: Market, depth: int = BOOK_DEPTH, grouping: int = 1) -> dict:
    """Book, 24 h stats and recent trades: the parts every trader sees alike."""
    book = selectors.cached_order_book(market_code=market.code, depth=depth, grouping=grouping)
    trades = selectors.recent_trades(market=market, limit=RECENT_TRADES)
    return {
        "book": book,
        "book_rows": list(zip_longest(book.bids, book.asks)),
        "book_etag": _book_etag(book.version, depth, grouping),
        "book_depth": depth,
        "book_depths": sorted({*BOOK_DEPTHS, depth}),
        "book_groupings": [(choice, book.tick * choice) for choice in GROUPINGS],
        "book_query": _book_query(depth, grouping),
        "stats": selectors.market_stats(market=market),
        "trades": trades,
        "last_tick": _last_tick(trades),
    }


def _own_marks(request, code: str, version: int, depth: int, grouping: int) -> dict:
    """The trader's own levels for the `book-own-marks` block (per trader, never cached
    with the shared book)."""
    return {
        "market_code": code,
        "own_levels": selectors.own_book_levels(
            user_id=request.user.pk,
            market_code=code,
            version=version,
            depth=depth,
            grouping=grouping,
        ),
    }


def _chart_data(market: Market, interval: str, now=None) -> dict:
    now = now or timezone.now()
    series = selectors.candles(market=market, interval=interval, now=now)
    return {
        "candles": series,
        "chart_interval": interval,
        "chart_intervals": list(INTERVALS),
        "chart_etag": _chart_etag(interval, series.last_trade_id or 0, now),
        "chart_poll_every": CHART_POLL_EVERY,
    }


def _my_orders(holder, market: Market, tab: str) -> dict:
    read = selectors.open_orders_for if tab == "open" else selectors.order_history_for
    return {"tab": tab, "orders": read(holder=holder, market=market, limit=MY_ORDERS)}


def _render_page(request, market: Market, *, form=None, estimate=None, review=False, **extra):
    holder = trader_holder_for(request.user)
    if form is None:
        initial = {}
        for name in ("side", "order_type", "price"):
            if request.GET.get(name):
                initial[name] = request.GET[name][:32]
        if initial.get("price"):
            initial["order_type"] = Order.Type.LIMIT
        form = OrderEntryForm(market_code=market.code, initial=initial)
    depth, grouping = _depth(request), _grouping(request)
    market_data = _market_data(market, depth, grouping)
    context = {
        **_base_context(request, market),
        **market_data,
        **_own_marks(request, market.code, market_data["book"].version, depth, grouping),
        **_chart_data(market, _interval(request)),
        **_my_orders(holder, market, _tab(request)),
        "balances": selectors.holder_balances(holder=holder),
        "form": form,
        "estimate": estimate,
        "review": review,
        "preview_problems": _preview_problems(form),
        **_confirmation(estimate, review=review),
        **extra,
    }
    response = render(request, PAGE, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _page_url(market: Market) -> str:
    return reverse("market:cash_market", args=[market.code])


# --- pages ---------------------------------------------------------------------------------


@trader_required
@require_GET
def index(request):
    first = selectors.markets_list()[:1]
    if not first:
        raise Http404("No market is open yet.")
    return redirect("market:cash_market", first[0].code)


@trader_required
@require_GET
def cash_market(request, code: str):
    market = _market(code)
    if code != market.code:
        return redirect("market:cash_market", market.code)
    return _render_page(request, market)


# --- market data (polled) ----------------------------------------------------------------


POLL_STATS_EVERY = 60  # seconds: a cached poll body is rebuilt at least this often


def _poll_body(
    request, code: str, depth: int, version: int, grouping: int = 1
) -> tuple[bytes, str, int]:
    """The body of a changed-book poll, its ETag and book version, through Django's cache.

    Everything in it (book, depth chart, stats, recent trades) is the same for every
    trader and changes only with the book, except the 24 h stats, which age with the
    clock: the key is (market, version, depth, grouping, language, minute). A body is
    filed under the version it was rendered from, which may be newer than the one asked
    for. Nothing per trader goes in (their own marks are added by `order_book`).
    """

    def key(book_version: int) -> str:
        return (
            f"market:poll:{code}:{book_version}:{depth}:{grouping}:{get_language()}:"
            f"{int(time.time() // POLL_STATS_EVERY)}"
        )

    cached = caches["book"].get(key(version))
    if cached is not None:
        return cached
    market = _market(code)
    context = {**_base_context(request, market), **_market_data(market, depth, grouping)}
    response = _render_partials(
        request,
        "order-book",
        context,
        oob=["market-stats", "depth-chart", "recent-trades"],
        rendered=_book_fragments(request, context),
    )
    body = (response.content, context["book_etag"], context["book"].version)
    caches["book"].set(key(context["book"].version), body, POLL_STATS_EVERY)
    return body


@poll_authenticated
@trader_required
@require_GET
def order_book(request, code: str):
    """The book partial, polled every 2 s. `If-None-Match` is compared with the market's
    book version before anything else is read: unchanged → 304, no body. A changed book
    comes with the stats, depth chart and recent trades out of band and an
    `HX-Trigger: book-changed` event (balances and My Orders refresh on it).

    The version comes from the live feed when it is connected, else from one query; the
    body is cached per version (`_poll_body`), and so are the trader's own levels that
    follow it (`book-own-marks`, out of band). So on PostgreSQL a poll by a known session
    makes no query at all when it answers 304, nor a 200 at a version this trader has
    already fetched (their first at a new version reads their own orders: 3 queries).
    """
    if not _is_htmx_poll(request):
        return _render_page(request, _market(code))
    code, depth, grouping = _market_code(code), _depth(request), _grouping(request)
    version = live.feed.book_version(code)
    if version is None:
        version = selectors.market_book_version(market_code=code)
    if version is None:
        raise Http404("No such market.")
    etag = _book_etag(version, depth, grouping)
    if etag in parse_etags(request.META.get("HTTP_IF_NONE_MATCH", "")):
        response = HttpResponseNotModified()
        response["ETag"] = etag
    else:
        body, etag, body_version = _poll_body(request, code, depth, version, grouping)
        marks = _render_partial(
            request,
            "book-own-marks",
            _own_marks(request, code, body_version, depth, grouping),
            oob=True,
        )
        response = HttpResponse(body + marks.encode())
        response["ETag"] = etag
        response["HX-Trigger"] = BOOK_CHANGED
    response["Cache-Control"] = "private, no-cache"
    # The body carries this trader's own marks: a browser must not answer another
    # session's poll from it (the live feed's path never reads the session, so Django
    # would not add Cookie by itself).
    patch_vary_headers(response, ["HX-Request", "Cookie"])
    return response


@poll_authenticated
@trader_required
@require_GET
def price_chart(request, code: str):
    """The price chart partial, polled every `CHART_POLL_EVERY` s and on `book-changed`.
    Its ETag (interval, newest trade id, current slot) is checked first: unchanged → 304
    after one query. A changed chart is the same for every trader: its HTML is cached per
    ETag. Without HTMX: the whole page, with the chart at `?interval=`."""
    if not _is_htmx_poll(request):
        return _render_page(request, _market(code))
    code, interval = _market_code(code), _interval(request)
    last_trade_id = selectors.market_last_trade_id(market_code=code)
    if last_trade_id is None:
        raise Http404("No such market.")
    now = timezone.now()
    etag = _chart_etag(interval, last_trade_id, now)
    if etag in parse_etags(request.META.get("HTTP_IF_NONE_MATCH", "")):
        response = HttpResponseNotModified()
    else:
        key = f"market:chart-html:{code}:{etag}:{get_language()}"
        body = caches["book"].get(key)
        if body is None:
            market = _market(code)
            context = {**_base_context(request, market), **_chart_data(market, interval, now)}
            etag = context["chart_etag"]
            body = _render_partial(request, "price-chart", context, oob=False)
            caches["book"].set(key, body, CHART_POLL_EVERY * 6)
        response = HttpResponse(body)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ["HX-Request"])
    return response


@trader_required
@require_GET
def my_orders(request, code: str):
    market = _market(code)
    if not request.htmx:
        return _render_page(request, market)
    holder = trader_holder_for(request.user)
    context = {**_base_context(request, market), **_my_orders(holder, market, _tab(request))}
    return _render_partials(request, "my-orders", context)


@trader_required
@require_GET
def balances(request, code: str):
    market = _market(code)
    if not request.htmx:
        return _render_page(request, market)
    holder = trader_holder_for(request.user)
    context = {
        **_base_context(request, market),
        "balances": selectors.holder_balances(holder=holder),
    }
    return _render_partials(request, "balances", context)


# --- order entry -------------------------------------------------------------------------


@trader_required
@require_POST
def order_preview(request, code: str):
    """The live estimate as the trader types (read-only: no locks, nothing placed).

    `fill_max` first sets the amount input to the most the trader can use (MAX).
    `review` is the confirmation step: the estimate with a Confirm button that places the
    order, or the errors next to their fields. Both answer with the whole order-entry
    panel; plain typing only with the preview."""
    market = _market(code)
    holder = trader_holder_for(request.user)
    fill_max = bool(request.POST.get("fill_max"))
    review = bool(request.POST.get("review")) and not fill_max
    requote = review and bool(request.POST.get("requote"))
    data = request.POST
    if fill_max:
        data = _with_max_amount(data, holder=holder, market=market)
    form = OrderEntryForm(data, market_code=market.code)
    balances = selectors.holder_balances(holder=holder)
    estimate = _estimate(form, holder=holder, balances=balances)
    reviewed = _reviewed(request.POST) if requote else None
    confirmation = _confirmation(estimate, review=review, reviewed=reviewed)
    if review and estimate is not None and estimate.refusal is not None:
        # The reason goes next to its input too, as placing the order would say it; the
        # confirmation shows it beside a disabled Confirm.
        field = estimate.refusal.field
        form.add_error(field if field in form.fields else None, estimate.refusal.message)
    if not request.htmx:
        return _render_page(
            request, market, form=form, estimate=estimate, review=review, **confirmation
        )
    context = {
        **_base_context(request, market),
        "form": form,
        "estimate": estimate,
        "balances": balances,
        "review": review,
        "preview_problems": _preview_problems(form),
        "requote": requote,
        **confirmation,
    }
    if (fill_max or review) and not requote:
        # The whole panel: errors next to their fields, or none left from an earlier try.
        # A re-quote answers with the estimate alone: the trader may be in an input.
        return _render_partials(request, "order-entry", context)
    return _render_partials(request, "order-preview", context)


def _estimate(form: OrderEntryForm, *, holder, balances):
    """The estimate of a valid form (the placement core on an unlocked read), else None."""
    if not form.is_valid():
        return None
    return selectors.order_estimate(
        holder=holder,
        request=form.order_request,
        available={asset: row.available for asset, row in balances.items()},
    )


def _reviewed(data) -> tuple:
    """The (average price, quantity) the open confirmation was reviewed with, carried in
    its hidden inputs; None when absent or not figures this page wrote (a fresh review)."""
    average, quantity = data.get("reviewed_average", ""), data.get("reviewed_quantity", "")
    try:
        return (
            parse_amount(average, field="reviewed_average", places=4, maximum=MAX_PRICE)
            if average
            else None,
            parse_quantity(quantity, field="reviewed_quantity", allow_zero=True),
        )
    except ValidationError:
        return None


def _confirmation(estimate, *, review: bool, reviewed: tuple | None = None) -> dict:
    """What the confirmation step shows beside the estimate.

    - `confirm_blocked`: why the order cannot succeed as estimated (the placement core's
      refusal: not enough funds, nothing to trade…); Confirm is then disabled with it.
    - `reviewed`: the figures the trader confirms, carried in hidden inputs so that a
      re-quote (the estimate re-requested while the confirmation is open) compares
      against what was reviewed, not against the previous re-quote.
    - `price_moved`: (was, now) average prices when a market order's re-quote moved
      beyond `limits.REQUOTE_TOLERANCE_PCT`: the trader must review again.
    """
    if not review or estimate is None:
        return {}
    blocked = estimate.refusal.message if estimate.refusal else ""
    if not blocked and estimate.total <= 0:
        blocked = "The estimate is €0.00: this order would trade nothing."
    current = (estimate.average_price, estimate.quantity)
    reviewed = reviewed or current
    moved = limits.quote_moved(
        market_order=estimate.order_type == Order.Type.MARKET,
        reviewed_average=reviewed[0],
        reviewed_quantity=reviewed[1],
        average=current[0],
        quantity=current[1],
    )
    return {
        "confirm_blocked": blocked,
        "reviewed": {"average": reviewed[0], "quantity": reviewed[1]},
        "price_moved": (reviewed, current) if moved and not blocked else None,
    }


def _preview_problems(form: OrderEntryForm) -> list[str]:
    """What stops the live preview, for inputs the trader has filled in (an empty one is
    not an error while typing)."""
    if not form.is_bound or form.is_valid():
        return []
    problems = [str(error) for error in form.non_field_errors()]
    for name, errors in form.errors.items():
        if name in form.fields and form.value(name):
            problems += [f"{form.fields[name].label}: {error}" for error in errors]
    return problems


def _with_max_amount(data, *, holder, market: Market):
    """The form data with its amount input set to MAX (left as it was when there is
    nothing to compute it from, e.g. a limit buy without a valid price)."""
    data = data.copy()
    probe = OrderEntryForm(data, market_code=market.code)
    side, order_type = probe.chosen_side, probe.chosen_type
    if side not in Order.Side.values or order_type not in Order.Type.values:
        return data
    price = None
    if order_type == Order.Type.LIMIT:
        try:
            price = parse_price(probe.value("price"), tick=market.tick_size)
        except ValidationError:
            price = None
    amount = selectors.order_max_amount(
        holder=holder,
        market=market.rules,
        side=side,
        order_type=order_type,
        price=price,
        by_eur=probe.by_eur,
    )
    if amount is not None:
        data[probe.amount_field] = str(amount)
    return data


@trader_required
@require_POST
@throttled("order_place", htmx_partial=f"{PAGE}#toasts")
def place_order(request, code: str):
    """Place the order. HTMX: a fresh order-entry panel (or the one with its errors), the
    result as a toast, and `HX-Trigger: market-changed`. Otherwise: redirect back to the
    page with a message, or the page with the form's errors. A key already used for a
    different order is refused on the form, which then carries a new key."""
    market = _market(code)
    holder = trader_holder_for(request.user)
    form = OrderEntryForm(request.POST, market_code=market.code)
    placement = None
    key_reused = False
    if form.is_valid():
        try:
            placement = order_place(
                owner=holder,
                request=form.order_request,
                actor=request.user,
                ip=client_ip(request),
            )
        except IdempotencyKeyReused as error:
            # An earlier submit of this form placed an order the page may never have
            # shown (its answer was lost): keep the inputs under a new key, and refresh.
            key_reused = True
            form.add_service_error(error)
            form.add_error(None, "Check My orders, then review and confirm again to place it.")
            form.renew_key()
        except ValidationError as error:
            form.add_service_error(error)
    if placement is None:
        # The estimate of the inputs as filled in, beside the refusal (a refused order's
        # form no longer carries its parsed request).
        balances = selectors.holder_balances(holder=holder)
        estimate = _estimate(
            OrderEntryForm(form.data, market_code=market.code), holder=holder, balances=balances
        )
        if not request.htmx:
            return _render_page(request, market, form=form, estimate=estimate)
        context = {
            **_base_context(request, market),
            "form": form,
            "balances": balances,
            "estimate": estimate,
            "preview_problems": _preview_problems(form),
        }
        response = _render_partials(request, "order-entry", context)
        if key_reused:
            response["HX-Trigger"] = MARKET_CHANGED
        return response

    level = messages.SUCCESS if placement.created else messages.INFO
    if placement.order.status == Order.Status.CANCELLED and not placement.order.filled_quantity:
        level = messages.WARNING
    messages.add_message(request, level, placement.message)
    if not request.htmx:
        return redirect(_page_url(market))
    context = {
        **_base_context(request, market),
        "form": form.fresh(),
        "balances": selectors.holder_balances(holder=holder),
    }
    response = _render_partials(request, "order-entry", context, oob=["toasts"])
    response["HX-Trigger"] = MARKET_CHANGED
    return response


@trader_required
@require_POST
@throttled("order_cancel", htmx_partial=f"{PAGE}#toasts")
def cancel_order(request, code: str, order_id: int):
    """Cancel one of the trader's resting orders and release its reservation."""
    market = _market(code)
    try:
        cancelled = order_cancel(order_id=order_id, user=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        changed = False
    else:
        released = describe(cancelled.reserve_asset, cancelled.released)
        messages.success(request, f"Order #{cancelled.id} cancelled; {released} released.")
        changed = True
    if not request.htmx:
        return redirect(f"{_page_url(market)}#my-orders")
    response = _render_partials(request, None, _base_context(request, market), oob=["toasts"])
    if changed:
        response["HX-Trigger"] = MARKET_CHANGED
    return response


@trader_required
@require_POST
@throttled("order_cancel", htmx_partial=f"{PAGE}#toasts")
def cancel_all_orders(request, code: str):
    """Cancel every resting order of the trader in this market, in one transaction."""
    market = _market(code)
    cancelled = orders_cancel_all(
        user=request.user, market_code=market.code, ip=client_ip(request)
    )
    if cancelled:
        released = " and ".join(
            describe(asset, amount) for asset, amount in released_by_asset(cancelled).items()
        )
        count = len(cancelled)
        messages.success(
            request,
            f"{count} order{'s' if count != 1 else ''} cancelled in {market.code}; "
            f"{released} released.",
        )
    else:
        messages.info(request, f"You have no open orders in {market.code}.")
    if not request.htmx:
        return redirect(f"{_page_url(market)}#my-orders")
    response = _render_partials(request, None, _base_context(request, market), oob=["toasts"])
    if cancelled:
        response["HX-Trigger"] = MARKET_CHANGED
    return response


def _amend_response(request, market: Market, order: Order, form, estimate=None, status=200):
    """The amend panel (HTMX, into #amend-order) or its page without JavaScript."""
    context = {
        **_base_context(request, market),
        "order": order,
        "amend_form": form,
        "amend_estimate": estimate,
    }
    template = AMEND_PAGE
    if request.htmx:
        # Typing updates only the estimate, so the inputs keep their focus.
        typing = request.htmx.target == "amend-preview"
        template = f"{AMEND_PAGE}#{'amend-preview' if typing else 'amend-order'}"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@trader_required
@require_http_methods(["GET", "POST"])
@throttled("order_place", htmx_partial=f"{PAGE}#toasts")
def amend_order(request, code: str, order_id: int):
    """Amend one of the trader's resting limit orders. GET: the form (price, open
    quantity) with its estimate. POST with `preview`: the estimate for the inputs; POST:
    amend, then back to the market (HTMX: the panel closes, a toast, `market-changed`)."""
    market = _market(code)
    try:
        order = order_for_amend(order_id=order_id, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        if not request.htmx:
            return redirect(f"{_page_url(market)}#my-orders")
        return _render_partials(request, None, _base_context(request, market), oob=["toasts"])
    if order.market_id != market.pk:
        raise Http404("No such order in this market.")
    holder = trader_holder_for(request.user)
    if request.method == "GET":
        form = OrderAmendForm(order=order)
        return _amend_response(request, market, order, form)
    form = OrderAmendForm(request.POST, order=order)
    if not form.is_valid():
        return _amend_response(request, market, order, form)
    price, quantity = form.amend_inputs
    if request.POST.get("preview"):
        estimate = selectors.amend_estimate(
            holder=holder, order=order, price=price, quantity=quantity
        )
        return _amend_response(request, market, order, form, estimate)
    try:
        amended = order_amend(
            order_id=order.pk,
            user=request.user,
            price=price,
            quantity=quantity,
            ip=client_ip(request),
        )
    except ValidationError as error:
        form.add_service_error(error)
        estimate = (
            selectors.amend_estimate(holder=holder, order=order, price=price, quantity=quantity)
            if order.is_resting
            else None
        )
        return _amend_response(request, market, order, form, estimate)
    messages.success(request, amended.message)
    if not request.htmx:
        return redirect(f"{_page_url(market)}#my-orders")
    response = render(request, f"{AMEND_PAGE}#amend-closed", _base_context(request, market))
    response.write(_render_partial(request, "toasts", _base_context(request, market), oob=True))
    response["HX-Trigger"] = MARKET_CHANGED
    return response
