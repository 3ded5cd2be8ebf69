//! A family of series keyed by their label values. Reads take a shared
//! lock and find the series; only a label set seen for the first time takes
//! the write lock. Keys are made of values the code chose (`&'static str`,
//! status codes, route templates), never of what a client sent, so every
//! family stays bounded.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

pub struct Family<K, V> {
    series: RwLock<BTreeMap<K, Arc<V>>>,
}

impl<K, V> Default for Family<K, V> {
    fn default() -> Self {
        Family {
            series: RwLock::default(),
        }
    }
}

impl<K: Ord + Clone, V: Default> Family<K, V> {
    /// The series for `key`, made on first use.
    pub fn get(&self, key: &K) -> Arc<V> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map
        // itself is still whole, so metrics go on.
        if let Some(v) = self.series.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            return v.clone();
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        series.entry(key.clone()).or_default().clone()
    }

    /// Every series, in key order.
    pub fn all(&self) -> Vec<(K, Arc<V>)> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        series.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn len(&self) -> usize {
        self.series.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
