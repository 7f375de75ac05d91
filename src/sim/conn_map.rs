//! A node's connections and what it keeps for each, iterated in the order
//! of their ids. A value lives in a slot whose number is kept as the tag
//! of the node's end of the connection (`Cx::tag`), so an event on the
//! connection finds its value without a search: at ten thousand nodes
//! the searches (a `BTreeMap` first, then a sorted vector of ids) missed
//! the cache at every step. The ids in order, each with its slot, serve
//! iteration and the rare lookups without an event at hand.
//!
//! Each value may have a small companion (`H`, the "hot" part) kept side
//! by side with the others': a scan that reads only that (which of a
//! peer's 64 workers is due) reads a few cache lines instead of one
//! value of half a kilobyte each, a miss apiece at ten thousand nodes.

use super::{ConnId, Cx};

pub struct ConnMap<V, H = ()> {
    /// The ids in order, each with its slot. Connection ids only grow in
    /// a run, so an insert is a push.
    order: Vec<(ConnId, u32)>,
    slots: Vec<Option<(ConnId, V)>>,
    /// Each slot's companion, side by side.
    hot: Vec<H>,
    free: Vec<u32>,
}

impl<V, H> Default for ConnMap<V, H> {
    fn default() -> Self {
        ConnMap {
            order: Vec::new(),
            slots: Vec::new(),
            hot: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<V, H: Copy + Default> ConnMap<V, H> {
    /// The companion of `id`'s value, found by the tag of this node's end.
    pub fn hot(&self, cx: &Cx, id: ConnId) -> Option<H> {
        let slot = cx.tag(id)?;
        self.slot(id, slot)?;
        Some(self.hot[slot as usize])
    }

    /// The value of `id` and its companion.
    pub fn get_with_hot(&mut self, cx: &Cx, id: ConnId) -> Option<(&mut V, &mut H)> {
        let slot = cx.tag(id)? as usize;
        match self.slots.get_mut(slot) {
            Some(Some((i, v))) if *i == id => Some((v, &mut self.hot[slot])),
            _ => None,
        }
    }

    /// Every id and companion, in the order of the ids.
    pub fn iter_hot(&self) -> impl Iterator<Item = (ConnId, H)> + '_ {
        self.order.iter().map(|&(id, s)| (id, self.hot[s as usize]))
    }
}

impl<V, H: Default> ConnMap<V, H> {
    fn find(&self, id: ConnId) -> Result<usize, usize> {
        self.order.binary_search_by_key(&id, |&(i, _)| i)
    }

    fn slot(&self, id: ConnId, slot: u32) -> Option<&V> {
        match self.slots.get(slot as usize) {
            Some(Some((i, v))) if *i == id => Some(v),
            _ => None,
        }
    }

    fn slot_mut(&mut self, id: ConnId, slot: u32) -> Option<&mut V> {
        match self.slots.get_mut(slot as usize) {
            Some(Some((i, v))) if *i == id => Some(v),
            _ => None,
        }
    }

    /// Has the value in `slot` and its companion fetched (see
    /// `SimNode::prefetch`).
    pub fn prefetch(&self, slot: u32) {
        if let Some(v) = self.slots.get(slot as usize) {
            super::prefetch(v, std::mem::size_of_val(v).min(256));
        }
        if let Some(h) = self.hot.get(slot as usize) {
            super::prefetch(h, 1);
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The value of `id`, found by the tag of this node's end.
    pub fn get(&self, cx: &Cx, id: ConnId) -> Option<&V> {
        self.slot(id, cx.tag(id)?)
    }

    pub fn get_mut(&mut self, cx: &Cx, id: ConnId) -> Option<&mut V> {
        self.slot_mut(id, cx.tag(id)?)
    }

    /// Sets the value of `id` (this node's end), returning the one it
    /// replaces; the end's tag is set to its slot.
    pub fn insert(&mut self, cx: &mut Cx, id: ConnId, value: V) -> Option<V> {
        match self.find(id) {
            Ok(i) => {
                let slot = self.order[i].1;
                let old = self.slots[slot as usize].replace((id, value));
                self.hot[slot as usize] = H::default();
                old.map(|(_, v)| v)
            }
            Err(i) => {
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.slots[s as usize] = Some((id, value));
                        self.hot[s as usize] = H::default();
                        s
                    }
                    None => {
                        self.slots.push(Some((id, value)));
                        self.hot.push(H::default());
                        u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 slots")
                    }
                };
                self.order.insert(i, (id, slot));
                cx.set_tag(id, slot);
                None
            }
        }
    }

    pub fn remove(&mut self, id: ConnId) -> Option<V> {
        let i = self.find(id).ok()?;
        let (_, slot) = self.order.remove(i);
        self.free.push(slot);
        self.slots[slot as usize].take().map(|(_, v)| v)
    }

    fn at(&self, slot: u32) -> &V {
        let (_, v) = self.slots[slot as usize].as_ref().expect("a listed slot");
        v
    }

    /// In the order of the ids.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &V)> {
        self.order.iter().map(|&(id, s)| (id, self.at(s)))
    }

    pub fn keys(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.order.iter().map(|&(id, _)| id)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.order.iter().map(|&(_, s)| self.at(s))
    }

    /// Every value, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().flatten().map(|(_, v)| v)
    }

    /// Everything, in the order of the ids; the map is left empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (ConnId, V)> + '_ {
        self.free.clear();
        self.hot.clear();
        let mut slots = std::mem::take(&mut self.slots);
        self.order.drain(..).map(move |(id, s)| {
            let (_, v) = slots[s as usize].take().expect("a listed slot");
            (id, v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::net::{Cx, Net};
    use super::super::{Caps, Config};
    use super::*;

    #[test]
    fn found_by_the_ends_tag_and_kept_in_the_order_of_the_ids() {
        let mut net = Net::new(Config::default());
        let (a, b) = (
            net.add_host(Caps::default(), 0),
            net.add_host(Caps::default(), 0),
        );
        let ids: Vec<ConnId> = (0..5).map(|_| net.connect(a, b)).collect();
        let mut cx = Cx {
            net: &mut net,
            me: a,
        };
        let mut m: ConnMap<usize> = ConnMap::default();
        for i in [3, 0, 4, 1] {
            assert!(m.insert(&mut cx, ids[i], i * 10).is_none());
        }
        assert_eq!(m.insert(&mut cx, ids[4], 41), Some(40));
        assert_eq!(m.len(), 4);
        assert_eq!(m.get(&cx, ids[3]), Some(&30));
        assert!(m.get(&cx, ids[2]).is_none(), "never inserted");
        *m.get_mut(&cx, ids[1]).unwrap() += 1;
        assert_eq!(m.remove(ids[3]), Some(30));
        assert_eq!(m.remove(ids[3]), None);
        assert!(m.get(&cx, ids[3]).is_none(), "its slot is free");
        // The freed slot goes to the next insert; the old id no longer
        // finds it.
        assert!(m.insert(&mut cx, ids[2], 20).is_none());
        assert!(m.get(&cx, ids[3]).is_none());
        assert_eq!(m.get(&cx, ids[2]), Some(&20));
        // Not this node's end: no tag.
        let other = Cx {
            net: cx.net,
            me: b + 1,
        };
        assert!(m.get(&other, ids[0]).is_none());
        let all: Vec<(ConnId, usize)> = m.iter().map(|(k, v)| (k, *v)).collect();
        let want = [(ids[0], 0), (ids[1], 11), (ids[2], 20), (ids[4], 41)];
        assert_eq!(all, want);
        let drained: Vec<(ConnId, usize)> = m.drain().collect();
        assert_eq!(drained, want);
        assert_eq!(m.len(), 0);
    }
}
