//! Goroutine leaks, told from the census: a place where more and more
//! goroutines stay parked. Each census gives every waiting goroutine of the
//! application and where it waits; a goroutine counts as *long parked* at
//! a site once gort has seen it parked there, with the same saved
//! registers, for `min_age`. A site is suspected of leaking when its number
//! of long-parked goroutines grows steadily over `window`: split into four
//! quarters, the smallest count of each quarter is larger than the one
//! before, by `min_growth` in all. A pool of idle workers is steady (and
//! one that fills at once rises in one step, not in four), a leak grows at
//! any rate. Pure: the caller gives the time and the census.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use super::census::{Location, Parked};

/// The leak watch's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakSettings {
    /// A goroutine parked at one site at least this long counts.
    pub min_age: Duration,
    /// The time over which a site's count must grow.
    pub window: Duration,
    /// By at least this many goroutines.
    pub min_growth: u64,
}

/// A site whose long-parked goroutines grew steadily over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspect {
    pub location: Arc<Location>,
    /// Long-parked goroutines there at the window's start and now.
    pub from: u64,
    pub to: u64,
    pub over: Duration,
}

/// Sites watched at most: the ones with the most long-parked goroutines.
const MAX_SITES: usize = 64;

/// The leak watch of one process.
#[derive(Debug)]
pub struct LeakWatch {
    settings: LeakSettings,
    /// When each park (goid, pc, sp) was first seen.
    first_seen: HashMap<(u64, u64, u64), Duration>,
    /// Per census: its time and the long-parked count of each site.
    history: VecDeque<(Duration, HashMap<Arc<Location>, u64>)>,
    /// Sites suspected now: said once until they stop growing.
    suspected: HashSet<Arc<Location>>,
    /// Times each site has been suspected, since the watch began.
    flagged: BTreeMap<Arc<Location>, u64>,
}

impl LeakWatch {
    pub fn new(settings: LeakSettings) -> Self {
        Self {
            settings,
            first_seen: HashMap::new(),
            history: VecDeque::new(),
            suspected: HashSet::new(),
            flagged: BTreeMap::new(),
        }
    }

    pub fn settings(&self) -> LeakSettings {
        self.settings
    }

    /// Times each site has been newly suspected so far (a cumulative count).
    pub fn flagged(&self) -> &BTreeMap<Arc<Location>, u64> {
        &self.flagged
    }

    /// Takes one census at `now` (time since any fixed start) and returns
    /// the sites newly suspected.
    pub fn observe(&mut self, now: Duration, parked: &[Parked]) -> Vec<Suspect> {
        let mut seen = HashMap::with_capacity(parked.len());
        let mut counts: HashMap<Arc<Location>, u64> = HashMap::new();
        for p in parked.iter().filter(|p| p.is_waiting()) {
            let key = (p.goid, p.pc, p.sp);
            let since = self.first_seen.get(&key).copied().unwrap_or(now);
            seen.insert(key, since);
            if let Some(location) = &p.location
                && now.saturating_sub(since) >= self.settings.min_age
            {
                *counts.entry(location.clone()).or_default() += 1;
            }
        }
        // Parks not seen now have ended: forgotten, so the map stays as
        // large as the process's waiting goroutines.
        self.first_seen = seen;
        if counts.len() > MAX_SITES {
            let mut ranked: Vec<_> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            ranked.truncate(MAX_SITES);
            counts = ranked.into_iter().collect();
        }
        self.history.push_back((now, counts));
        // Keep just enough to cover the window: the newest census older
        // than its start is its first.
        while self.history.len() > 1 && self.history[1].0 + self.settings.window <= now {
            self.history.pop_front();
        }
        let mut found = Vec::new();
        let growing: Vec<(Arc<Location>, u64, u64)> = self.growing(now);
        self.suspected.retain(|site| growing.iter().any(|(g, ..)| g == site));
        for (site, from, to) in growing {
            if self.suspected.insert(site.clone()) {
                *self.flagged.entry(site.clone()).or_default() += 1;
                found.push(Suspect { location: site, from, to, over: self.settings.window });
            }
        }
        found
    }

    /// Sites whose quarter minima rose through the window, with the first
    /// quarter's and the last's.
    fn growing(&self, now: Duration) -> Vec<(Arc<Location>, u64, u64)> {
        let window = self.settings.window;
        let Some((oldest, _)) = self.history.front() else { return Vec::new() };
        // A window not yet covered says nothing.
        if now.saturating_sub(*oldest) < window || window.is_zero() {
            return Vec::new();
        }
        let start = now - window;
        let quarter = |t: Duration| -> usize {
            let into = t.saturating_sub(start).as_secs_f64() / window.as_secs_f64();
            ((into * 4.0) as usize).min(3)
        };
        let mut minima: HashMap<&Arc<Location>, [Option<u64>; 4]> = HashMap::new();
        let mut filled = [false; 4];
        for (t, _) in self.history.iter().filter(|(t, _)| *t >= start) {
            filled[quarter(*t)] = true;
        }
        if filled.contains(&false) {
            // Too few censuses for four quarters (a report interval longer
            // than a quarter of the window).
            return Vec::new();
        }
        let sites: Vec<&Arc<Location>> =
            self.history.back().map(|(_, c)| c.keys().collect()).unwrap_or_default();
        for (t, counts) in self.history.iter().filter(|(t, _)| *t >= start) {
            let q = quarter(*t);
            for site in &sites {
                let n = counts.get(*site).copied().unwrap_or(0);
                let m = &mut minima.entry(*site).or_insert([None; 4])[q];
                *m = Some(m.map_or(n, |m: u64| m.min(n)));
            }
        }
        let mut out = Vec::new();
        for (site, m) in minima {
            let m = m.map(|m| m.unwrap_or(0));
            if m.windows(2).all(|w| w[1] > w[0]) && m[3] - m[0] >= self.settings.min_growth {
                out.push((site.clone(), m[0], m[3]));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: LeakSettings =
        LeakSettings { min_age: Duration::from_secs(5), window: Duration::from_secs(20), min_growth: 4 };

    fn site(line: u32) -> Arc<Location> {
        Arc::new(Location { function: "main.f".into(), file: "main.go".into(), line })
    }

    fn park(goid: u64, at: &Arc<Location>) -> Parked {
        Parked::at(
            goid,
            0x1000 + u64::from(at.line),
            0xc000_0000 + goid * 0x1000,
            "waiting",
            "chan_send",
            Some(at.clone()),
        )
    }

    /// Runs a census a second for `secs` seconds from `from`, with the
    /// goroutines `population(second)` returns; the suspects found.
    fn run(
        w: &mut LeakWatch,
        from: u64,
        secs: u64,
        population: impl Fn(u64) -> Vec<Parked>,
    ) -> Vec<(u64, Suspect)> {
        let mut found = Vec::new();
        for t in from..from + secs {
            found.extend(w.observe(Duration::from_secs(t), &population(t)).into_iter().map(|s| (t, s)));
        }
        found
    }

    #[test]
    fn a_leak_is_named_and_a_steady_pool_is_not() {
        let (leak, pool) = (site(42), site(7));
        let mut w = LeakWatch::new(SETTINGS);
        // 50 idle workers parked all along; one more leaked goroutine a second.
        let found = run(&mut w, 0, 60, |t| {
            let mut all: Vec<Parked> = (0..50).map(|g| park(g, &pool)).collect();
            all.extend((0..t).map(|k| park(1000 + k, &leak)));
            all
        });
        assert!(!found.is_empty(), "the leak is found");
        assert!(found.iter().all(|(_, s)| s.location == leak), "only the leak: {found:?}");
        // Long parked after 5 s, then a window of 20 s: found once by 26 s.
        let (t, s) = &found[0];
        assert!(*t <= 26, "found at {t}");
        assert_eq!(found.len(), 1, "said once while it keeps growing");
        assert!(s.to >= s.from + SETTINGS.min_growth);
        assert_eq!(w.flagged()[&leak], 1);
    }

    #[test]
    fn a_pool_that_fills_at_once_or_churns_is_not_a_leak() {
        let pool = site(7);
        let mut w = LeakWatch::new(SETTINGS);
        // 40 workers start at 10 s and stay; another 20 wake and park again
        // every 3 s (new saved sp each time), so they never grow old.
        let found = run(&mut w, 0, 120, |t| {
            let mut all: Vec<Parked> =
                if t >= 10 { (0..40).map(|g| park(g, &pool)).collect() } else { vec![] };
            all.extend((0..20).map(|g| {
                let mut p = park(100 + g, &pool);
                p.sp += (t / 3) * 8;
                p
            }));
            all
        });
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_leak_that_stops_growing_can_be_found_again_and_ended_parks_are_forgotten() {
        let leak = site(42);
        let mut w = LeakWatch::new(SETTINGS);
        let grow = |upto: u64| move |t: u64| (0..t.min(upto)).map(|k| park(k, &site(42))).collect::<Vec<_>>();
        assert_eq!(run(&mut w, 0, 40, grow(40)).len(), 1);
        // Flat for a while: no longer suspected, nothing said.
        assert!(run(&mut w, 40, 40, grow(40)).is_empty());
        // Then everything wakes: the watch forgets them all.
        run(&mut w, 80, 1, |_| Vec::new());
        assert!(w.first_seen.is_empty());
        // Growing again: said again.
        let again = run(&mut w, 81, 40, |t| (0..t - 81).map(|k| park(5000 + k, &leak)).collect());
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(w.flagged()[&leak], 2);
    }

    #[test]
    fn parks_without_a_site_are_aged_but_not_suspected() {
        let mut w = LeakWatch::new(SETTINGS);
        let found =
            run(&mut w, 0, 60, |t| (0..t).map(|k| Parked::at(k, 1, 2, "waiting", "io", None)).collect());
        assert!(found.is_empty());
        assert_eq!(w.first_seen.len(), 59);
    }
}
