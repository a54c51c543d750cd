// The reference plan's TypeScript client types for the back office's liquidity screens
// and market makers, kept exactly as that client declares them. The API contract test
// (config/tests/test_api_contract.py) reads this file and checks every response of the
// staff API that a client of these types reads against them: field names, and kinds
// (with the two documented differences: money is a decimal string, ids are integers).

export interface MarketMakerAllocation {
  mm_id: string;
  mm_name: string;
  mm_type: 'LIQUIDITY_PROVIDER' | 'ASSET_HOLDER';
  allocation: number;
  orders_count: number;
}

export interface LiquidityPlan {
  mms: MarketMakerAllocation[];
  total_amount: number;
  price_levels: Array<{
    price: number;
    percentage: number;
  }>;
}

export interface MissingAssets {
  asset_type: string;
  required: number;
  available: number;
  shortfall: number;
}

export interface LiquidityPreview {
  can_execute: boolean;
  certificate_type: string;
  bid_plan: LiquidityPlan;
  ask_plan: LiquidityPlan;
  missing_assets?: MissingAssets;
  suggested_actions: string[];
  total_orders_count: number;
  estimated_spread: number;
}

export interface LiquidityCreateResult {
  success: boolean;
  liquidity_operation_id: string;
  orders_created: number;
  bid_liquidity_eur: number;
  ask_liquidity_eur: number;
  market_makers_used: Array<{
    mm_id: string;
    mm_type: string;
    amount: number;
  }>;
}

export type MarketMakerType = 'ASSET_HOLDER' | 'LIQUIDITY_PROVIDER';

export interface MarketMaker {
  id: string;
  name: string;
  description?: string;
  mm_type: MarketMakerType;
  eur_balance?: number;
  is_active: boolean;
  created_at: string;
}
