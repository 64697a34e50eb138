//! systemd service notifications (READY, STOPPING, RELOADING, STATUS, the watchdog and
//! start-timeout extensions) through the `sd-notify` crate, which sends them to
//! `$NOTIFY_SOCKET`. Without the variable every call is a no-op; a failed send is logged,
//! never fatal.

pub use sd_notify::NotifyState as State;
use std::time::Duration;

/// Sends `states` in one notification.
pub fn notify(states: &[State]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// The watchdog period systemd asked for (`$WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}
