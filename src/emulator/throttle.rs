//! Per-account API rate limits, as VOD enforces them (`Throttling.User`, HTTP 400), switched on
//! with the `rate_limits` fault (`{"rate_limits": {"CreateUploadVideo": 50}}`).
//!
//! VOD's limit is per account and per action, shared by its RAM users (`docs/reference/vod-api.md` §5.4); the
//! emulator has one account, so every credential it accepts (the AccessKey and the STS
//! credentials issued from it) shares one budget per action. How VOD counts a "second" is not
//! documented; the emulator counts requests in fixed windows of one wall-clock (Unix) second,
//! on arrival, and a refused request does not use up the budget (a guess).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::errors::RpcError;
use super::Stats;

/// How many past windows `/_emulator/stats` keeps per action (bounded memory).
const KEPT_WINDOWS: usize = 300;

/// Requests accepted per action in the current window.
#[derive(Debug, Default)]
pub(crate) struct Windows {
    current: HashMap<String, (u64, u32)>,
}

/// The gateway's answer when the account's rate for an action is used up (`docs/reference/vod-api.md` §5.2).
pub(crate) fn throttled() -> RpcError {
    RpcError::new(
        400,
        "Throttling.User",
        "Request was denied due to user flow control.",
    )
}

fn unix_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Windows {
    /// Admits one request of `action` under `limit` (requests per second), or refuses it when
    /// this second's budget is spent; `stats` records both. Given the parts of the locked state
    /// it needs rather than the state, so that `state` can own the windows one way.
    pub(crate) fn admit(
        &mut self,
        action: &str,
        limit: u32,
        stats: &mut Stats,
    ) -> Result<(), RpcError> {
        let second = unix_second();
        let window = self.current.entry(action.to_owned()).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= limit {
            *stats.throttled.entry(action.to_owned()).or_default() += 1;
            return Err(throttled());
        }
        window.1 += 1;
        let accepted = window.1;
        let per_second = stats.rate_windows.entry(action.to_owned()).or_default();
        per_second.insert(second, accepted);
        while per_second.len() > KEPT_WINDOWS {
            per_second.pop_first();
        }
        Ok(())
    }
}
