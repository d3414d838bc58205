//! The read side behind `/api/v1/observability/...`.
