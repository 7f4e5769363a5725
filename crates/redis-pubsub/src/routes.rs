//! The subscriptions this instance wants, and where their messages go.

use std::collections::BTreeMap;

use tokio::sync::broadcast;

use crate::message::PubSubEvent;
use crate::state::SubscriptionState;

/// Exact channel or glob pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Channel,
    Pattern,
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) tx: broadcast::Sender<PubSubEvent>,
    /// Confirmed by the server since the last (re)connect.
    pub(crate) active: bool,
    /// `active`, for the holders to read without waiting for the event;
    /// always changed before the event is sent.
    pub(crate) state: SubscriptionState,
}

impl Route {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
            active: false,
            state: SubscriptionState::default(),
        }
    }
}

/// Every wanted channel and pattern. Guarded by a std mutex: critical
/// sections are short and never await.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    pub(crate) channels: BTreeMap<String, Route>,
    pub(crate) patterns: BTreeMap<String, Route>,
}

impl Routes {
    pub(crate) fn of(&mut self, kind: Kind) -> &mut BTreeMap<String, Route> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    /// Sends `event` to every subscription.
    pub(crate) fn broadcast(&self, event: &PubSubEvent) {
        for route in self.channels.values().chain(self.patterns.values()) {
            // No receiver left is fine: its holder dropped it.
            let _ = route.tx.send(event.clone());
        }
    }

    pub(crate) fn mark_all_inactive(&mut self) {
        for route in self.channels.values_mut().chain(self.patterns.values_mut()) {
            route.active = false;
            route.state.set(false);
        }
    }

    /// Names of routes not yet confirmed, by kind.
    pub(crate) fn inactive(&self) -> (Vec<String>, Vec<String>) {
        let pick = |m: &BTreeMap<String, Route>| {
            m.iter()
                .filter(|(_, r)| !r.active)
                .map(|(n, _)| n.clone())
                .collect()
        };
        (pick(&self.channels), pick(&self.patterns))
    }

    /// Marks `names` active and tells their holders, once per activation.
    pub(crate) fn activate(&mut self, kind: Kind, names: &[String]) {
        let map = self.of(kind);
        for name in names {
            if let Some(route) = map.get_mut(name)
                && !route.active
            {
                route.active = true;
                route.state.set(true);
                let _ = route.tx.send(PubSubEvent::Subscribed);
            }
        }
    }
}
