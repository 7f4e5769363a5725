//! Single flight: concurrent loads of one key in one process share one call.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// A finished load, type-erased; every participant of one flight asked for
/// the same types, so the downcast cannot fail.
pub(crate) type Outcome = Arc<dyn Any + Send + Sync>;

/// Flights are per key *and* per result type: two call sites reading one key
/// as different types do not share a result.
type FlightKey = (String, TypeId);

type Flights = Arc<Mutex<HashMap<FlightKey, watch::Receiver<Option<Outcome>>>>>;

#[derive(Debug, Default)]
pub(crate) struct SingleFlight {
    flights: Flights,
}

/// A caller's part in a flight.
pub(crate) enum Role {
    /// Runs the load, then [`Leader::finish`]es.
    Leader(Leader),
    /// Waits for the leader's outcome.
    Follower(watch::Receiver<Option<Outcome>>),
}

/// The leader's handle (it may move into a spawned task). Dropping it
/// without finishing (a panicking loader) ends the flight: waiters see the
/// channel close.
pub(crate) struct Leader {
    flights: Flights,
    key: FlightKey,
    tx: watch::Sender<Option<Outcome>>,
}

impl SingleFlight {
    /// Joins the flight for (`key`, `T`), or starts it.
    pub(crate) fn join<T: 'static>(&self, key: &str) -> Role {
        let flight_key = (key.to_owned(), TypeId::of::<T>());
        let mut flights = self.flights.lock().expect("flights lock");
        if let Some(rx) = flights.get(&flight_key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(flight_key.clone(), rx);
        Role::Leader(Leader {
            flights: self.flights.clone(),
            key: flight_key,
            tx,
        })
    }

    /// Loads in progress.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.flights.lock().expect("flights lock").len()
    }
}

impl Leader {
    /// A receiver for the leader itself (it waits like everyone else).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<Outcome>> {
        self.tx.subscribe()
    }

    /// Publishes the outcome to every waiter and ends the flight; later
    /// callers start a new one (and normally hit the cache it filled).
    pub(crate) fn finish(self, outcome: Outcome) {
        self.tx.send_replace(Some(outcome));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Ok(mut flights) = self.flights.lock() {
            flights.remove(&self.key);
        }
    }
}

/// Waits for a flight's outcome; `None` if its leader vanished.
pub(crate) async fn outcome(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    let ready = rx.wait_for(Option::is_some).await.ok()?;
    ready.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The first caller leads, others follow, and the flight ends with the leader.
    #[tokio::test]
    async fn leader_and_followers() {
        let flights = SingleFlight::default();
        let Role::Leader(leader) = flights.join::<u32>("k") else {
            panic!("first caller leads")
        };
        let Role::Follower(rx) = flights.join::<u32>("k") else {
            panic!("second caller follows")
        };
        assert!(
            matches!(flights.join::<String>("k"), Role::Leader(_)),
            "another type, another flight"
        );
        let mine = leader.subscribe();
        leader.finish(Arc::new(5u32));
        assert_eq!(flights.in_flight(), 0);
        for rx in [rx, mine] {
            let value = outcome(rx).await.unwrap();
            assert_eq!(value.downcast_ref::<u32>(), Some(&5));
        }
    }

    // A leader dropped without finishing releases its followers with None.
    #[tokio::test]
    async fn an_abandoned_leader_releases_its_followers_with_none() {
        let flights = SingleFlight::default();
        let Role::Leader(leader) = flights.join::<u32>("k") else {
            panic!()
        };
        let Role::Follower(rx) = flights.join::<u32>("k") else {
            panic!()
        };
        drop(leader);
        assert!(outcome(rx).await.is_none());
        assert!(matches!(flights.join::<u32>("k"), Role::Leader(_)));
    }
}
