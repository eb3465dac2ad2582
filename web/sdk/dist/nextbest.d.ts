// Types of the nextbest browser SDK (dist/nextbest.mjs and dist/nextbest.js).

export type Consent = "granted" | "pending" | "denied";

export interface Options {
  /** The server's origin, e.g. "https://reco.shop.example" ("" for the page's own). */
  endpoint?: string;
  /** A browser key: public; acts for this session, and for a user only with their token. */
  key?: string;
  /** Server keys, for a page of a shop that keeps them there (not recommended). */
  writeKey?: string;
  readKey?: string;
  /** The logged-in user on this page, with the token the shop's server signed for them. */
  userId?: string;
  userToken?: string;
  cookieName?: string;
  cookieDomain?: string;
  cookieSameSite?: "Lax" | "Strict" | "None";
  /** Default: on over https. */
  cookieSecure?: boolean | null;
  /** "pending": nothing is sent or stored until grantConsent(). Default "granted". */
  consent?: Consent;
  /** Treat a browser's Global Privacy Control signal as denied consent (default true). */
  respectGlobalPrivacyControl?: boolean;
  sessionMinutes?: number;
  batchSize?: number;
  /** Milliseconds between sends of the queue. */
  flushInterval?: number;
  maxRetries?: number;
  retryBase?: number;
  /** Events kept at most (in memory and in localStorage); the oldest go first. */
  maxQueue?: number;
  /** Milliseconds a read (recommend, search, keywords, affinity) waits for its answer. */
  timeout?: number;
  /** Keep the queue in localStorage, so the next page sends what this one could not. */
  persist?: boolean;
  /** Called once for every error: a refused or dropped batch, a failed request. */
  onError?: (error: NextbestError) => void;
}

export interface FieldError {
  field: string;
  message: string;
}

export interface NextbestError extends Error {
  error: string;
  detail: FieldError[];
  status?: number;
}

export interface EventFields {
  item_id?: string;
  query?: string;
  value?: number;
  recommendation_id?: string;
  context?: Record<string, unknown>;
  [field: string]: unknown;
}

export type EventType =
  | "view" | "click" | "cart" | "remove-from-cart" | "purchase" | "search"
  | "keyword-click" | "favorite" | "dwell";

export interface RecommendedItem {
  item_id: string;
  score: number;
  source: string;
  reason: string;
  because?: Record<string, number> | null;
}

export interface Recommendations {
  recommendation_id: string;
  model_version: string | null;
  placement: string;
  experiment?: string | null;
  variant?: string | null;
  items: RecommendedItem[];
}

export interface RecommendParams {
  n?: number;
  placement?: string;
  item_id?: string;
  filter?: string;
  filter_params?: string;
  candidates?: string;
  explain?: boolean;
}

export interface Keyword {
  query: string;
  score: number;
  path: string;
  [field: string]: unknown;
}

export interface KeywordCard {
  show: boolean;
  reason: string;
  title: string;
  keywords: Keyword[];
  recommendation_id: string;
  ranker: string;
  model_version: string | null;
}

export interface Login {
  session_id: string;
  user_id: string;
  events: number;
}

export declare class Client {
  constructor(options?: Options);
  readonly version: string;
  options: Required<Options>;
  queue: Array<Record<string, unknown>>;
  allowed(): boolean;
  grantConsent(): Promise<void>;
  revokeConsent(): void;
  sessionId(): string;
  resetSession(): void;
  identify(userId: string, userToken?: string): Promise<Login | null>;
  logout(): Promise<void>;
  track(type: EventType | string, fields?: EventFields): string | null;
  flush(): Promise<void>;
  flushAll(): Promise<unknown>;
  drain(): Promise<void>;
  recommend(params?: RecommendParams): Promise<Recommendations>;
  search(q: string, params?: { n?: number; item_id?: string }): Promise<Recommendations>;
  keywords(params?: { n?: number; item_id?: string; page?: string }): Promise<KeywordCard>;
  affinity(params?: { n?: number }): Promise<Record<string, unknown>>;
}

export declare function init(options?: Options): Client;
export declare const version: string;

declare const Nextbest: { init: typeof init; Client: typeof Client; version: string };
export default Nextbest;
