//! Fairness between tenants: each tenant may hold at most
//! `HTTP_MAX_CONCURRENCY_PER_TENANT` of the service's requests in flight,
//! so that one tenant's slow uploads cannot take the whole
//! `HTTP_MAX_CONCURRENCY` and turn every other tenant away.
//!
//! A request counts against the tenant of its *authenticated session*,
//! never against a tenant named in its path or in a token not yet checked:
//! otherwise anyone could spend another tenant's share by naming it. The
//! share is taken in the [`crate::Authenticated`] extractor, right after the
//! session is read, and given back when the handler is done with it (the
//! body is read while it is held). A request that fails authentication
//! holds only a global slot, for one Redis lookup.
//!
//! **Memory.** The map holds only tenants with a request in flight: an entry
//! is removed when its count drops to zero. Every counted request holds one
//! of the `HTTP_MAX_CONCURRENCY` global slots, so the map never has more
//! entries than that, whatever tenants exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use shared_types::TenantId;

/// The in-flight count of each tenant with requests in flight.
#[derive(Debug)]
pub(crate) struct TenantSlots {
    limit: usize,
    in_flight: Mutex<HashMap<TenantId, usize>>,
}

impl TenantSlots {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// A share of `tenant`'s slots, or `None` when it holds all of them.
    pub(crate) fn try_acquire(self: &Arc<Self>, tenant: &TenantId) -> Option<TenantShare> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(tenant.clone()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(TenantShare {
            slots: self.clone(),
            tenant: tenant.clone(),
        })
    }

    /// Tenants with requests in flight now.
    #[cfg(test)]
    fn tenants(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One request's share of its tenant's slots, given back on drop.
#[derive(Debug)]
pub(crate) struct TenantShare {
    slots: Arc<TenantSlots>,
    tenant: TenantId,
}

impl Drop for TenantShare {
    fn drop(&mut self) {
        let mut in_flight = self
            .slots
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A tenant gets at most `limit` shares, others are unaffected, and a
    // tenant's entry disappears with its last share (the map stays small).
    #[test]
    fn a_tenant_gets_at_most_its_limit_and_idle_tenants_take_no_memory() {
        let slots = TenantSlots::new(2);
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let first = slots.try_acquire(&a).unwrap();
        let second = slots.try_acquire(&a).unwrap();
        assert!(slots.try_acquire(&a).is_none());
        let other = slots.try_acquire(&b).unwrap();
        assert_eq!(slots.tenants(), 2);
        drop(first);
        let third = slots.try_acquire(&a).unwrap();
        drop((second, third, other));
        assert_eq!(slots.tenants(), 0);
        // A refused attempt leaves nothing behind either.
        let full = TenantSlots::new(1);
        let held = full.try_acquire(&a).unwrap();
        assert!(full.try_acquire(&a).is_none());
        drop(held);
        assert_eq!(full.tenants(), 0);
    }
}
