//! Which target slot of the probes' tables each watched process has: the
//! slot number is every one of its uprobes' attach cookie, so a probe finds
//! its target with one array read.

use gort_common::MAX_TARGETS;

/// The process in each slot (0: free).
#[derive(Debug)]
pub struct TargetSlots([u32; MAX_TARGETS as usize]);

impl Default for TargetSlots {
    fn default() -> Self {
        Self([0; MAX_TARGETS as usize])
    }
}

impl TargetSlots {
    /// The slot of `pid`, if it has one.
    pub fn of(&self, pid: u32) -> Option<u32> {
        self.0.iter().position(|&p| p == pid && pid != 0).map(|i| i as u32)
    }

    /// The slot of `pid`, taking a free one if it has none; the flag says
    /// the slot is newly taken (its kernel-side books must be cleared).
    /// None when every slot is taken.
    pub fn take(&mut self, pid: u32) -> Option<(u32, bool)> {
        if let Some(slot) = self.of(pid) {
            return Some((slot, false));
        }
        let free = self.0.iter().position(|&p| p == 0)?;
        self.0[free] = pid;
        Some((free as u32, true))
    }

    /// Frees the slot of `pid`, returning it.
    pub fn free(&mut self, pid: u32) -> Option<u32> {
        let slot = self.of(pid)?;
        self.0[slot as usize] = 0;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_keeps_its_slot_until_freed_and_slots_are_reused() {
        let mut slots = TargetSlots::default();
        assert_eq!(slots.take(100), Some((0, true)));
        assert_eq!(slots.take(200), Some((1, true)));
        assert_eq!(slots.take(100), Some((0, false)));
        assert_eq!(slots.free(100), Some(0));
        assert_eq!(slots.of(100), None);
        assert_eq!(slots.free(100), None);
        assert_eq!(slots.take(300), Some((0, true)));
        assert_eq!(slots.of(200), Some(1));
    }

    #[test]
    fn every_slot_taken_refuses_another_process() {
        let mut slots = TargetSlots::default();
        for pid in 1..=MAX_TARGETS {
            assert!(slots.take(pid).is_some());
        }
        assert_eq!(slots.take(MAX_TARGETS + 1), None);
        assert_eq!(slots.take(MAX_TARGETS), Some((MAX_TARGETS - 1, false)));
        assert_eq!(slots.of(0), None, "pid 0 is never a target");
    }
}
