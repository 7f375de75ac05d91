//! A node's connections and what it keeps for each, in the order of their
//! ids: the ids in one short vector, the values in another. A frame's
//! arrival looks its connection up here; with tens of thousands of nodes
//! each lookup in a `BTreeMap` missed the cache at every level of the
//! tree, where this reads a few lines of ids and then one value.
//! Connection ids only grow in a run, so an insert is a push.

use super::ConnId;

pub struct ConnMap<V> {
    ids: Vec<ConnId>,
    values: Vec<V>,
}

impl<V> Default for ConnMap<V> {
    fn default() -> Self {
        ConnMap {
            ids: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<V> ConnMap<V> {
    fn find(&self, id: ConnId) -> Result<usize, usize> {
        self.ids.binary_search(&id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn contains_key(&self, id: &ConnId) -> bool {
        self.find(*id).is_ok()
    }

    pub fn get(&self, id: &ConnId) -> Option<&V> {
        self.find(*id).ok().map(|i| &self.values[i])
    }

    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut V> {
        self.find(*id).ok().map(|i| &mut self.values[i])
    }

    /// Sets the value of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: ConnId, value: V) -> Option<V> {
        match self.find(id) {
            Ok(i) => Some(std::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                self.ids.insert(i, id);
                self.values.insert(i, value);
                None
            }
        }
    }

    pub fn remove(&mut self, id: &ConnId) -> Option<V> {
        let i = self.find(*id).ok()?;
        self.ids.remove(i);
        Some(self.values.remove(i))
    }

    /// In the order of the ids.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnId, &V)> {
        self.ids.iter().zip(&self.values)
    }

    pub fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.ids.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.values.iter_mut()
    }

    /// Everything, in the order of the ids; the map is left empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (ConnId, V)> + '_ {
        self.ids.drain(..).zip(self.values.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_in_the_order_of_the_ids_whatever_the_order_of_inserts() {
        let mut m = ConnMap::default();
        for id in [5, 1, 9, 3] {
            assert!(m.insert(ConnId(id), id * 10).is_none());
        }
        assert_eq!(m.insert(ConnId(9), 91), Some(90));
        assert_eq!(m.len(), 4);
        assert_eq!(m.get(&ConnId(3)), Some(&30));
        assert!(m.get(&ConnId(4)).is_none());
        *m.get_mut(&ConnId(1)).unwrap() += 1;
        assert_eq!(m.remove(&ConnId(5)), Some(50));
        assert_eq!(m.remove(&ConnId(5)), None);
        assert!(!m.contains_key(&ConnId(5)));
        let all: Vec<(u32, u32)> = m.iter().map(|(k, v)| (k.0, *v)).collect();
        assert_eq!(all, [(1, 11), (3, 30), (9, 91)]);
        let drained: Vec<(u32, u32)> = m.drain().map(|(k, v)| (k.0, v)).collect();
        assert_eq!(drained, all);
        assert_eq!(m.len(), 0);
    }
}
