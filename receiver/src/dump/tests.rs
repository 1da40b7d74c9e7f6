use std::collections::BTreeMap;

use super::*;

/// Memory made of words at addresses; anything else is unreadable.
#[derive(Default)]
struct Words(BTreeMap<u64, u64>);

impl Words {
    fn put(&mut self, address: u64, value: u64) {
        self.0.insert(address, value);
    }
}

impl Memory for Words {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (i, byte) in buf.iter_mut().enumerate() {
            let at = address + i as u64;
            let value = self.0.get(&(at & !7)).ok_or(MemoryError::Read {
                address: at,
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
            *byte = value.to_le_bytes()[(at & 7) as usize];
        }
        Ok(())
    }
}

/// Functions at 0x1000-sized slots: 0x1000 `runtime.gopark`, 0x2000
/// `main.worker` (with `main.helper` inlined at its 0x2100..), 0x3000
/// `runtime.goexit`, 0x4000 `main.main`, 0x5000 `runtime.bgsweep`.
struct Fake;

impl Symbols for Fake {
    fn frames(&self, pc: u64) -> Vec<Frame> {
        let f = |function: &str, line, inlined| Frame {
            function: function.into(),
            file: "/src/x.go".into(),
            line,
            entry: pc & !0xfff,
            inlined,
            wrapper: false,
        };
        match pc & !0xfff {
            0x1000 => vec![f("runtime.gopark", 400, false)],
            0x2000 if pc & 0xfff >= 0x100 => vec![f("main.helper", 7, true), f("main.worker", 20, false)],
            0x2000 => vec![f("main.worker", 21, false)],
            0x3000 => vec![f("runtime.goexit", 1700, false)],
            0x4000 => vec![f("main.main", 30, false)],
            0x5000 => vec![f("runtime.bgsweep", 280, false)],
            _ => Vec::new(),
        }
    }

    fn is_runtime_entry(&self, pc: u64) -> bool {
        pc == 0x5000
    }

    fn is_stack_bottom(&self, pc: u64) -> bool {
        pc & !0xfff == 0x3000
    }
}

const LAYOUT: Layout = Layout {
    allgs: 0x100,
    goid: 0x8,
    status: 0x10,
    waitreason: Some(0x18),
    waitsince: Some(0x20),
    gopc: 0x28,
    parent_goid: Some(0x30),
    startpc: 0x38,
    sched_pc: 0x40,
    sched_sp: 0x48,
    sched_bp: 0x50,
};

/// A g of zeros at `gp`, as long as `LAYOUT` reads: the dump reads it whole.
fn zeroed_g(mem: &mut Words, gp: u64) {
    for off in (0..0x58).step_by(8) {
        mem.put(gp + off, 0);
    }
}

/// A g at `gp` parked in gopark, called from the inlined helper in
/// main.worker, over goexit: frames at 0x9000.. on its stack.
fn parked(mem: &mut Words, gp: u64, id: u64, stack: u64) {
    zeroed_g(mem, gp);
    mem.put(gp + 0x8, id);
    mem.put(gp + 0x10, u64::from(gstatus::WAITING | gstatus::SCAN));
    mem.put(gp + 0x18, 7);
    mem.put(gp + 0x20, 1_000_000_000);
    mem.put(gp + 0x28, 0x4010);
    mem.put(gp + 0x30, 1);
    mem.put(gp + 0x38, 0x2000);
    mem.put(gp + 0x40, 0x1010);
    mem.put(gp + 0x48, stack);
    mem.put(gp + 0x50, stack + 0x10);
    // gopark's frame: caller's bp, return into worker's inlined helper.
    mem.put(stack + 0x10, stack + 0x40);
    mem.put(stack + 0x18, 0x2120);
    // worker's frame: no caller bp, return into goexit.
    mem.put(stack + 0x40, 0);
    mem.put(stack + 0x48, 0x3001);
}

fn names() -> Vec<String> {
    (0..10).map(|i| if i == 7 { "chan receive".to_owned() } else { format!("r{i}") }).collect()
}

#[test]
fn a_parked_goroutine_is_walked_to_goexit_with_its_inlined_frames() {
    let mut mem = Words::default();
    mem.put(0x100, 0x200);
    mem.put(0x108, 3);
    mem.put(0x200, 0x1_0000);
    mem.put(0x208, 0);
    mem.put(0x210, 0x2_0000);
    parked(&mut mem, 0x1_0000, 18, 0x9000);
    // A dead g is skipped; so is a nil slot.
    zeroed_g(&mut mem, 0x2_0000);
    mem.put(0x2_0000 + 0x10, u64::from(gstatus::DEAD));
    let names = names();
    let dump = take(&mem, &LAYOUT, &Fake, Some(&names), 61_000_000_000).unwrap();
    assert_eq!(dump.goroutines.len(), 1);
    let g = &dump.goroutines[0];
    assert_eq!((g.id, g.state, g.wait_reason.as_deref()), (18, "waiting", Some("chan receive")));
    assert_eq!(g.waited_seconds_approx, Some(60.0));
    assert_eq!(g.pcs, [0x1010, 0x2120, 0x3001]);
    assert!(!g.truncated);
    let frames: Vec<(&str, u32)> =
        g.frames.iter().map(|f| (f.frame.function.as_str(), f.frame.line)).collect();
    assert_eq!(
        frames,
        [("runtime.gopark", 400), ("main.helper", 7), ("main.worker", 20), ("runtime.goexit", 1700)]
    );
    assert_eq!(g.created_by.as_ref().map(|c| c.frame.function.as_str()), Some("main.main"));
    assert_eq!(g.creator, Some(1));

    let text = per_goroutine(&dump, false);
    assert_eq!(
        text,
        "goroutine 18 [chan receive, 1 minutes]:\n\
         main.helper(...)\n\t/src/x.go:7\n\
         main.worker(...)\n\t/src/x.go:20 +0x120\n\
         created by main.main in goroutine 1\n\t/src/x.go:30 +0x10\n\n"
    );
    assert!(per_goroutine(&dump, true).contains("runtime.gopark(...)\n\t/src/x.go:400 +0x10\n"));
}

#[test]
fn identical_stacks_are_grouped_with_counts_and_the_runtime_s_goroutines_left_out() {
    let mut mem = Words::default();
    mem.put(0x100, 0x200);
    mem.put(0x108, 3);
    for (i, gp) in [0x1_0000u64, 0x2_0000, 0x3_0000].into_iter().enumerate() {
        mem.put(0x200 + 8 * i as u64, gp);
        parked(&mut mem, gp, 20 + i as u64, 0x9000 + 0x1000 * i as u64);
    }
    // The third is the runtime's sweeper.
    mem.put(0x3_0000 + 0x38, 0x5000);
    let dump = take(&mem, &LAYOUT, &Fake, None, 0).unwrap();
    assert_eq!(dump.goroutines.iter().filter(|g| g.runtime).count(), 1);
    let text = grouped(&dump, false);
    assert!(text.starts_with("goroutine dump: total 2\n2 @ 0x1010 0x2120 0x3001\n"), "{text}");
    assert!(text.contains("#\t0x2120\tmain.helper+0x120\t/src/x.go:7\n"), "{text}");
    assert!(grouped(&dump, true).starts_with("goroutine dump: total 3\n3 @"));
    assert!(!per_goroutine(&dump, false).contains("goroutine 22 "));
}

#[test]
fn a_walk_ends_where_frame_pointers_stop_rising_or_memory_ends() {
    let mut mem = Words::default();
    // A frame pointer below the stack pointer: corrupt, stop at once.
    let (pcs, end) = return_addresses(&mem, 0x1010, 0x9000, 0x8000, 10, |_| false);
    assert_eq!((pcs.as_slice(), end), (&[0x1010][..], WalkEnd::OutOfOrder));
    // A loop (a frame pointing at itself) ends instead of spinning.
    mem.put(0x9010, 0x9010);
    mem.put(0x9018, 0x2010);
    let (pcs, end) = return_addresses(&mem, 0x1010, 0x9000, 0x9010, 10, |_| false);
    assert_eq!((pcs.as_slice(), end), (&[0x1010, 0x2010][..], WalkEnd::OutOfOrder));
    // A misaligned frame pointer.
    let (_, end) = return_addresses(&mem, 0x1010, 0x9000, 0x9014, 10, |_| false);
    assert_eq!(end, WalkEnd::OutOfOrder);
    // Unreadable memory ends it too (an unmapped frame pointer).
    let (pcs, end) = return_addresses(&mem, 0x1010, 0x9000, 0xa000, 10, |_| false);
    assert_eq!((pcs.len(), end), (1, WalkEnd::Unreadable));
    assert!(end.truncated(pcs.len()));
    // As does the frame bound.
    mem.put(0x9010, 0x9020);
    mem.put(0x9020, 0x9030);
    mem.put(0x9028, 0x2020);
    mem.put(0x9030, 0);
    mem.put(0x9038, 0x3001);
    let (pcs, end) = return_addresses(&mem, 0x1010, 0x9000, 0x9010, 2, |_| false);
    assert_eq!((pcs.as_slice(), end), (&[0x1010, 0x2010][..], WalkEnd::TooDeep));
    // Up to the bottom, told or not.
    let (pcs, end) = return_addresses(&mem, 0x1010, 0x9000, 0x9010, 10, |pc| pc == 0x3001);
    assert_eq!((pcs.as_slice(), end), (&[0x1010, 0x2010, 0x2020, 0x3001][..], WalkEnd::Bottom));
    let (pcs, end) = return_addresses(&mem, 0x1010, 0x9000, 0x9010, 10, |_| false);
    assert_eq!((pcs.len(), end), (4, WalkEnd::NoFramePointer));
    assert!(end.truncated(pcs.len()), "without the bottom told, the walk cannot know");
    // A goroutine that never ran: its entry, no frame pointer, complete.
    let (pcs, end) = return_addresses(&mem, 0x2000, 0x9000, 0, 10, |_| false);
    assert_eq!((pcs.as_slice(), end), (&[0x2000][..], WalkEnd::NoFramePointer));
    assert!(!end.truncated(pcs.len()));
    assert_eq!(return_addresses(&mem, 0, 0x9000, 0, 10, |_| false), (Vec::new(), WalkEnd::OutOfOrder));
}
