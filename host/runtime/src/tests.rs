//! Unit tests with small components: a test guest written as a core module in WAT, wrapped into a
//! component of the handler world by `wit-component` (what `wasm-component-ld` does for Rust
//! guests), and hand-written component WAT for the rejection paths. The test guests target the
//! released 0.1.0 world (`wit/released/0.1.0`), so every test also shows that a component built
//! against 0.1.0 runs on this host; [`guest_011`] is the 0.1.1 one with the `actions` export.
//!
//! The test guest's `validate` picks a behaviour from the number of mixins of the entity:
//! 0 accept, 1 refuse (two refusals), 2 infinite loop, 3 memory bomb, 4 `unreachable`,
//! 5 unbounded recursion, 6 log flood (1000 lines of 100 bytes), 7 one 2 MiB log line,
//! 8 `kv.set("k", "v")`, 9 table bomb, 10 log the kind with field (id, location),
//! 11 `query.get(location)` and log the kind of what came back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::*;

/// Data segment offsets of the test guest (see `guest_wat`).
const ACCEPT: u32 = 1024;
const REFUSE: u32 = 1056;
const CHANGES: u32 = 1280;
const EMPTY_CHANGES: u32 = 1440;
const CONFLICT: u32 = 1472;
/// Iterations of behaviour 12's bounded busy loop: about 15 ms of CPU time.
const BUSY_ITERATIONS: u32 = 40_000_000;

fn le(v: u32) -> String {
    v.to_le_bytes().iter().map(|b| format!("\\{b:02x}")).collect()
}

fn data(offset: u32, bytes: &str) -> String {
    format!("(data (i32.const {offset}) \"{bytes}\")\n")
}

/// The test guest's core module; `memory_pages` is its initial memory size.
fn guest_wat(memory_pages: u32) -> String {
    let mut d = String::new();
    // validate refusing: result<_, list<refusal>> = err([invalid-attribute(cores, too many), other(no)])
    d += &data(REFUSE, &format!("\\01\\00\\00\\00{}{}", le(1088), le(2)));
    d += &data(1088, &format!("\\00\\00\\00\\00{}{}{}{}", le(1200), le(18), le(1220), le(8)));
    d += &data(1108, &format!("\\02\\00\\00\\00{}{}", le(1232), le(2)));
    d += &data(1200, "occi.compute.cores");
    d += &data(1220, "too many");
    d += &data(1232, "no");
    // on-create: ok([set(occi.compute.state = text(active)), remove(foo)])
    d += &data(CHANGES, &format!("\\00\\00\\00\\00{}{}", le(1312), le(2)));
    let pad = "\\00".repeat(8);
    d += &data(1312, &format!("{pad}{}{}{pad}{}{}", le(1400), le(18), le(1420), le(6)));
    d += &data(1344, &format!("\\01\\00\\00\\00\\00\\00\\00\\00{}{}", le(1430), le(3)));
    d += &data(1400, "occi.compute.state");
    d += &data(1420, "active");
    d += &data(1430, "foo");
    // ok([])
    d += &data(EMPTY_CHANGES, &format!("\\00\\00\\00\\00{}{}", le(EMPTY_CHANGES), le(0)));
    // on-delete: err(conflict(keep me))
    d += &data(CONFLICT, &format!("\\01\\00\\00\\00\\01\\00\\00\\00{}{}", le(1500), le(7)));
    d += &data(1500, "keep me");
    d += &data(1536, &"x".repeat(100));
    d += &data(1640, "kv");
    let entity_params = "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32";
    format!(
        r#"(module
  (import "ocni:handler/log@0.1.0" "write" (func $log (param i32 i32 i32 i32 i32)))
  (import "ocni:handler/kv@0.1.0" "set" (func $kv_set (param i32 i32 i32 i32 i32)))
  (import "ocni:handler/query@0.1.0" "get" (func $get (param i32 i32 i32)))
  (memory (export "memory") {memory_pages})
  (table $t 1 funcref)
  (global $heap (mut i32) (i32.const 4096))
  {d}
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                                                     (i32.const 16))
                                          (i32.const 1)))
                    (i32.const -1))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))
  (func $recurse (param i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "ocni:handler/handler@0.1.0#validate")
    (param $loc i32) (param $loc_len i32) (param $id i32) (param $id_len i32) (param $kind i32) (param $kind_len i32)
    (param $mixins i32) (param $n i32) (param $attrs i32) (param $attrs_len i32) (param $op i32) (result i32)
    (local $i i32)
    (if (i32.eq (local.get $n) (i32.const 1)) (then (return (i32.const {REFUSE}))))
    (if (i32.eq (local.get $n) (i32.const 2)) (then (loop $spin (br $spin))))
    (if (i32.eq (local.get $n) (i32.const 3))
      (then (loop $grow
              (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
              (br $grow))))
    (if (i32.eq (local.get $n) (i32.const 4)) (then unreachable))
    (if (i32.eq (local.get $n) (i32.const 5)) (then (drop (call $recurse (i32.const 0)))))
    (if (i32.eq (local.get $n) (i32.const 6))
      (then (loop $flood
              (call $log (i32.const 1) (i32.const 1536) (i32.const 100) (i32.const 0) (i32.const 0))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $flood (i32.lt_u (local.get $i) (i32.const 1000))))))
    (if (i32.eq (local.get $n) (i32.const 7))
      (then (drop (memory.grow (i32.const 40)))
            (call $log (i32.const 1) (i32.const 65536) (i32.const 2097152) (i32.const 0) (i32.const 0))))
    (if (i32.eq (local.get $n) (i32.const 8))
      (then (call $kv_set (i32.const 1640) (i32.const 1) (i32.const 1641) (i32.const 1) (i32.const 1648))))
    (if (i32.eq (local.get $n) (i32.const 9))
      (then (loop $tgrow
              (if (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1)) (then unreachable))
              (br $tgrow))))
    (if (i32.eq (local.get $n) (i32.const 10))
      (then (i32.store (i32.const 1664) (local.get $id))
            (i32.store (i32.const 1668) (local.get $id_len))
            (i32.store (i32.const 1672) (local.get $loc))
            (i32.store (i32.const 1676) (local.get $loc_len))
            (call $log (i32.const 1) (local.get $kind) (local.get $kind_len) (i32.const 1664) (i32.const 1))))
    (if (i32.eq (local.get $n) (i32.const 11))
      (then (call $get (local.get $loc) (local.get $loc_len) (i32.const 1696))
            (if (i32.eq (i32.load8_u (i32.const 1696)) (i32.const 1))
              (then (call $log (i32.const 2) (i32.load (i32.const 1716)) (i32.load (i32.const 1720))
                               (i32.const 0) (i32.const 0))))))
    (if (i32.eq (local.get $n) (i32.const 12))
      (then (local.set $i (i32.const {BUSY_ITERATIONS}))
            (loop $busy
              (local.set $i (i32.sub (local.get $i) (i32.const 1)))
              (br_if $busy (local.get $i)))))
    (i32.const {ACCEPT}))
  (func (export "ocni:handler/handler@0.1.0#on-create") (param {entity_params}) (result i32)
    (i32.const {CHANGES}))
  (func (export "ocni:handler/handler@0.1.0#on-update") (param i32) (result i32)
    (i32.const {EMPTY_CHANGES}))
  (func (export "ocni:handler/handler@0.1.0#on-delete") (param {entity_params}) (result i32)
    (i32.const {CONFLICT}))
  (func (export "ocni:handler/handler@0.1.0#on-action") (param {entity_params} i32 i32 i32 i32) (result i32)
    (i32.const {EMPTY_CHANGES}))
)"#
    )
}

/// The test guest as a component of the handler world.
fn guest_component(memory_pages: u32) -> Vec<u8> {
    componentize(&guest_wat(memory_pages))
}

fn guest() -> &'static [u8] {
    static GUEST: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    GUEST.get_or_init(|| guest_component(1))
}

fn test_config() -> RuntimeConfig {
    RuntimeConfig { max_concurrent_calls: 4, deadline: Duration::from_millis(50), ..RuntimeConfig::default() }
}

fn runtime(dir: &Path) -> Runtime {
    Runtime::new(test_config(), dir).expect("runtime")
}

type LogLine = (LogLevel, String, Vec<(String, String)>);

#[derive(Default)]
struct Recorded {
    logs: Vec<LogLine>,
    kv: BTreeMap<String, Vec<u8>>,
    gets: Vec<String>,
}

/// The location of an entity whose `get` fails in [`TestHost`] (a storage failure).
const FAULTY: &str = "/faulty";

/// A host that records what the guest did; `entity` is what `get` answers.
struct TestHost {
    recorded: Arc<Mutex<Recorded>>,
    entity: Option<EntityView>,
}

impl TestHost {
    fn boxed() -> (Box<dyn HostApi + Send>, Arc<Mutex<Recorded>>) {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        (Box::new(TestHost { recorded: Arc::clone(&recorded), entity: None }), recorded)
    }
}

impl HostApi for TestHost {
    fn log(&mut self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        self.recorded.lock().unwrap().logs.push((level, message.to_string(), fields.to_vec()));
    }
    fn find(&mut self, _filter: FilterView) -> Result<Vec<EntityView>, HostFault> {
        Ok(Vec::new())
    }
    fn get(&mut self, location: &str) -> Result<Option<EntityView>, HostFault> {
        self.recorded.lock().unwrap().gets.push(location.to_string());
        match &self.entity {
            Some(e) if e.location == FAULTY => Err(HostFault("the store is unreadable".into())),
            e => Ok(e.clone()),
        }
    }
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostFault> {
        Ok(self.recorded.lock().unwrap().kv.get(key).cloned())
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.recorded.lock().unwrap().kv.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn kv_delete(&mut self, key: &str) {
        self.recorded.lock().unwrap().kv.remove(key);
    }
    fn kv_keys(&mut self, prefix: &str) -> Result<Vec<String>, HostFault> {
        Ok(self.recorded.lock().unwrap().kv.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}

/// An entity whose mixin count selects the test guest's behaviour.
fn entity(behaviour: usize) -> EntityView {
    EntityView {
        location: "/compute/42".into(),
        id: "42".into(),
        kind: "http://schemas.ogf.org/occi/infrastructure#compute".into(),
        mixins: (0..behaviour).map(|i| format!("http://example.org/m#{i}")).collect(),
        attributes: vec![
            AttributeView::new("occi.compute.cores", ValueView::Integer(2)),
            AttributeView::new("occi.compute.speed", ValueView::Number(2.5)),
            AttributeView::new("occi.core.title", ValueView::Text("web".into())),
            AttributeView::new("x.on", ValueView::Boolean(true)),
            AttributeView::new("x.tags", ValueView::Json("[1,2]".into())),
        ],
    }
}

fn validate(behaviour: usize) -> Call {
    Call::Validate { entity: entity(behaviour), op: Operation::Create }
}

/// Compiles the test guest into `runtime` and loads it.
fn handler(runtime: &Runtime) -> Arc<Handler> {
    let compiled = runtime.compile(guest()).expect("test guest compiles");
    runtime.load(&compiled.digest).expect("test guest loads")
}

/// One call on a fresh instance, with the runtime's own limits or lower ones.
fn call_one(
    runtime: &Runtime,
    handler: &Handler,
    host: Box<dyn HostApi + Send>,
    call: Call,
    limits: CallLimits,
) -> (Result<Outcome, CallError>, Box<dyn HostApi + Send>) {
    let (result, host) = runtime.call_each(handler, host, vec![call], limits);
    (result.map(|mut outcomes| outcomes.pop().expect("one call, one outcome")), host)
}

fn call(runtime: &Runtime, handler: &Handler, call: Call) -> (Result<Outcome, CallError>, Arc<Mutex<Recorded>>) {
    let (host, recorded) = TestHost::boxed();
    let (result, _host) = call_one(runtime, handler, host, call, CallLimits::default());
    (result, recorded)
}

#[test]
fn runtime_and_handler_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Runtime>();
    check::<Handler>();
    check::<Arc<Handler>>();
}

#[test]
fn exports_map_to_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let handler = handler(&runtime);

    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
    assert_eq!(
        call(&runtime, &handler, validate(1)).0,
        Ok(Outcome::Refused(vec![
            RefusalView::InvalidAttribute { name: "occi.compute.cores".into(), reason: "too many".into() },
            RefusalView::Other("no".into()),
        ]))
    );
    assert_eq!(
        call(&runtime, &handler, Call::Create { entity: entity(0) }).0,
        Ok(Outcome::Changes(vec![
            ChangeView::Set(AttributeView::new("occi.compute.state", ValueView::Text("active".into()))),
            ChangeView::Remove("foo".into()),
        ]))
    );
    assert_eq!(
        call(&runtime, &handler, Call::Update { old: entity(0), new: entity(1) }).0,
        Ok(Outcome::Changes(vec![]))
    );
    assert_eq!(
        call(&runtime, &handler, Call::Delete { entity: entity(0) }).0,
        Ok(Outcome::Refused(vec![RefusalView::Conflict("keep me".into())]))
    );
    let action = Call::Action {
        entity: entity(0),
        action: "http://schemas.ogf.org/occi/infrastructure/compute/action#start".into(),
        params: vec![AttributeView::new("method", ValueView::Text("graceful".into()))],
    };
    assert_eq!(call(&runtime, &handler, action).0, Ok(Outcome::Changes(vec![])));
}

#[test]
fn call_each_runs_calls_on_one_instance_and_stops_at_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let handler = handler(&runtime);
    let each = |calls: Vec<Call>| {
        let (host, recorded) = TestHost::boxed();
        let (result, _host) = runtime.call_each(&handler, host, calls, CallLimits::default());
        (result, recorded)
    };

    // validate then the hook: both outcomes, in order.
    let (result, _) = each(vec![validate(0), Call::Create { entity: entity(0) }]);
    let outcomes = result.unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0], Outcome::Accepted);
    assert!(matches!(&outcomes[1], Outcome::Changes(c) if c.len() == 2), "{outcomes:?}");

    // A refusal ends the sequence: the hook does not run (its kv write would show).
    let (result, recorded) = each(vec![validate(1), validate(8)]);
    assert!(matches!(result.unwrap().as_slice(), [Outcome::Refused(_)]));
    assert!(recorded.lock().unwrap().kv.is_empty(), "the call after the refusal did not run");
    let (result, recorded) = each(vec![validate(0), validate(8)]);
    assert_eq!(result.unwrap(), vec![Outcome::Accepted, Outcome::Accepted]);
    assert_eq!(recorded.lock().unwrap().kv.get("k").map(Vec::as_slice), Some(&b"v"[..]));

    // A trap in either call fails the whole sequence.
    let (result, _) = each(vec![validate(0), validate(4)]);
    assert!(matches!(result, Err(CallError::Trap(_))), "{result:?}");
}

#[test]
fn host_imports_see_the_call_and_the_host_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let handler = handler(&runtime);

    // The entity reaches the guest: it logs its kind with the field (id, location).
    let (result, recorded) = call(&runtime, &handler, validate(10));
    assert_eq!(result, Ok(Outcome::Accepted));
    let logs = &recorded.lock().unwrap().logs;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].0, LogLevel::Info);
    assert_eq!(logs[0].1, entity(10).kind);
    assert_eq!(logs[0].2, vec![("42".to_string(), "/compute/42".to_string())]);

    // kv writes go to the host, which the caller gets back.
    let (host, recorded) = TestHost::boxed();
    let (result, host) = call_one(&runtime, &handler, host, validate(8), CallLimits::default());
    assert_eq!(result, Ok(Outcome::Accepted));
    drop(host);
    assert_eq!(recorded.lock().unwrap().kv.get("k").map(Vec::as_slice), Some(&b"v"[..]));

    // An entity from `get` is lowered into the guest.
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let returned = EntityView { kind: "http://example.org/k#returned".into(), ..entity(3) };
    let host = Box::new(TestHost { recorded: Arc::clone(&recorded), entity: Some(returned) });
    let (result, _host) = call_one(&runtime, &handler, host, validate(11), CallLimits::default());
    assert_eq!(result, Ok(Outcome::Accepted));
    let recorded = recorded.lock().unwrap();
    assert_eq!(recorded.gets, vec!["/compute/42".to_string()]);
    assert_eq!(recorded.logs.len(), 1);
    assert_eq!((recorded.logs[0].0, recorded.logs[0].1.as_str()), (LogLevel::Warn, "http://example.org/k#returned"));
    drop(recorded);

    // A host that cannot answer traps the call: the guest never sees a false "nothing there".
    let faulty = EntityView { location: FAULTY.into(), ..entity(3) };
    let host = Box::new(TestHost { recorded: Arc::new(Mutex::new(Recorded::default())), entity: Some(faulty) });
    let (result, _host) = call_one(&runtime, &handler, host, validate(11), CallLimits::default());
    match result {
        Err(CallError::Trap(message)) => assert!(message.contains("the store is unreadable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn log_lines_past_the_budget_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let handler = handler(&runtime);
    let (result, recorded) = call(&runtime, &handler, validate(6));
    assert_eq!(result, Ok(Outcome::Accepted));
    let logs = &recorded.lock().unwrap().logs;
    // 64 KiB / 100 bytes: 655 lines kept, 345 dropped, then one note from the runtime.
    assert_eq!(logs.len(), 656);
    assert!(logs[..655].iter().all(|(level, message, _)| *level == LogLevel::Info && message.len() == 100));
    let (level, note, _) = &logs[655];
    assert_eq!(*level, LogLevel::Warn);
    assert!(note.starts_with("345 log line(s) (34500 bytes) dropped"), "{note}");
}

#[test]
fn hostile_guests_are_stopped_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let handler = handler(&runtime);

    let started = Instant::now();
    let (result, _) = call(&runtime, &handler, validate(2));
    let elapsed = started.elapsed();
    assert_eq!(result, Err(CallError::Timeout { limit: Duration::from_millis(50) }));
    assert!(elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(result.unwrap_err().to_string(), "handler exceeded its 50 ms time limit");

    let (result, _) = call(&runtime, &handler, validate(3));
    assert_eq!(result, Err(CallError::MemoryLimit { limit_bytes: 32 << 20 }));

    let (result, _) = call(&runtime, &handler, validate(4));
    assert!(matches!(&result, Err(CallError::Trap(m)) if m.contains("unreachable")), "{result:?}");

    let (result, _) = call(&runtime, &handler, validate(5));
    assert_eq!(result, Err(CallError::StackOverflow));

    let (result, _) = call(&runtime, &handler, validate(7));
    assert_eq!(result, Err(CallError::OutputTooLarge { limit_bytes: 1 << 20 }));

    let (result, _) = call(&runtime, &handler, validate(9));
    assert!(matches!(&result, Err(CallError::ResourceLimit(m)) if m.contains("10000")), "{result:?}");

    // The engine and the pool are fine afterwards.
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
}

#[test]
fn the_epoch_ticks_only_while_a_call_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Never lowered: lowered calls tick faster (the next test).
    let runtime = Runtime::new(RuntimeConfig { yield_after: None, ..test_config() }, dir.path()).expect("runtime");
    let handler = handler(&runtime);
    // Loading the handler ran a probe call; then nothing runs.
    std::thread::sleep(Duration::from_millis(20));
    let before = runtime.epoch_ticks();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(runtime.epoch_ticks(), before, "no call ran, yet the ticker ticked");

    // A call looping to its 50 ms deadline is stopped by the ticks (one per millisecond).
    let started = Instant::now();
    assert_eq!(call(&runtime, &handler, validate(2)).0, Err(CallError::Timeout { limit: Duration::from_millis(50) }));
    let elapsed = started.elapsed();
    let during = runtime.epoch_ticks() - before;
    assert!(during >= 10 && during <= elapsed.as_millis() as u64 + 1, "{during} ticks in {elapsed:?}");

    // Idle again: at most the tick in progress when the call ended, then none.
    std::thread::sleep(Duration::from_millis(20));
    let after = runtime.epoch_ticks();
    assert!(after - before <= during + 1, "{} ticks after the call began, {during} during it", after - before);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(runtime.epoch_ticks(), after, "the ticker went on ticking with no call running");
}

#[test]
fn the_epoch_ticks_faster_while_a_lowered_call_runs() {
    let dir = tempfile::tempdir().unwrap();
    // A 200 ms deadline; lowered after 1 ms of CPU time.
    let config = RuntimeConfig {
        deadline: Duration::from_millis(200),
        yield_after: Some(Duration::from_millis(1)),
        ..test_config()
    };
    let runtime = Arc::new(Runtime::new(config, dir.path()).expect("runtime"));
    let handler = handler(&runtime);
    let looping = |runtime: &Arc<Runtime>| on_a_fresh_thread(runtime, &handler, 2).result;
    let before = runtime.epoch_ticks();
    assert_eq!(looping(&runtime), Err(CallError::Timeout { limit: Duration::from_millis(200) }));
    let ticks = runtime.epoch_ticks() - before;
    assert_eq!(runtime.lowered_calls(), 0, "the call ended: no lowered call runs");
    // One tick every 250 µs once lowered: 800 if sleeping took no longer than asked; at 1 ms, 200.
    assert!(ticks > 300, "{ticks} ticks during a 200 ms lowered call");
    // Counted while it runs.
    let counting = {
        let runtime = Arc::clone(&runtime);
        std::thread::spawn(move || {
            let mut seen = 0;
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(150) {
                seen = seen.max(runtime.lowered_calls());
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        })
    };
    assert_eq!(looping(&runtime), Err(CallError::Timeout { limit: Duration::from_millis(200) }));
    assert_eq!(counting.join().unwrap(), 1);
    assert_eq!(runtime.lowered_calls(), 0);
}

/// The scheduling policy of the current thread.
fn policy() -> thread_priority::ThreadSchedulePolicy {
    thread_priority::thread_schedule_policy().expect("the thread's scheduling policy")
}

/// What one call did on a fresh thread (a lowered thread stays lowered, so each call gets its
/// own): its result, the thread's policy before and after, and whether it was lowered before and
/// after.
struct OnFreshThread {
    result: Result<Outcome, CallError>,
    policy_before: thread_priority::ThreadSchedulePolicy,
    policy_after: thread_priority::ThreadSchedulePolicy,
    lowered_before: bool,
    lowered: bool,
}

/// Runs `behaviour`'s validation on a fresh thread.
fn on_a_fresh_thread(runtime: &Arc<Runtime>, handler: &Arc<Handler>, behaviour: usize) -> OnFreshThread {
    let (runtime, handler) = (Arc::clone(runtime), Arc::clone(handler));
    std::thread::spawn(move || {
        let (policy_before, lowered_before) = (policy(), thread_yielded());
        let result = call(&runtime, &handler, validate(behaviour)).0;
        OnFreshThread { result, policy_before, policy_after: policy(), lowered_before, lowered: thread_yielded() }
    })
    .join()
    .unwrap()
}

#[test]
fn a_call_past_yield_after_lowers_its_thread_to_idle_and_a_short_call_does_not() {
    use thread_priority::{NormalThreadSchedulePolicy::Idle, ThreadSchedulePolicy::Normal};
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { yield_after: Some(Duration::from_millis(5)), ..test_config() };
    let runtime = Arc::new(Runtime::new(config, dir.path()).expect("runtime"));
    let handler = handler(&runtime);
    // A call that returns at once keeps the thread's priority.
    let short = on_a_fresh_thread(&runtime, &handler, 0);
    assert_eq!(short.result, Ok(Outcome::Accepted));
    let before = (short.policy_before, short.lowered_before);
    assert!(!before.1 && before.0 != Normal(Idle), "a fresh thread starts at normal priority: {before:?}");
    let after = short.policy_after;
    assert!(!short.lowered && after == before.0, "a short call changed its thread's policy to {after:?}");
    // A call looping to its 50 ms deadline has its thread lowered after 5 ms, for good.
    let looping = on_a_fresh_thread(&runtime, &handler, 2);
    assert_eq!(looping.result, Err(CallError::Timeout { limit: Duration::from_millis(50) }));
    assert_ne!(looping.policy_before, Normal(Idle));
    assert!(looping.lowered, "the looping call's thread was not marked as yielded");
    let after = looping.policy_after;
    assert_eq!(after, Normal(Idle), "the looping call's thread runs at {after:?}");

    // Without `yield_after`, even a call that loops to its deadline keeps the priority.
    let config = RuntimeConfig { yield_after: None, ..test_config() };
    let runtime = Arc::new(Runtime::new(config, dir.path()).expect("runtime"));
    let handler = self::handler(&runtime);
    let looping = on_a_fresh_thread(&runtime, &handler, 2);
    let after = looping.policy_after;
    assert!(matches!(looping.result, Err(CallError::Timeout { .. })));
    assert!(!looping.lowered && after == looping.policy_before, "with yield_after None the policy went to {after:?}");
}

/// Pins the current thread to core 0.
fn pin_to_core_0() {
    let mut cpus = rustix::thread::CpuSet::new();
    cpus.set(0);
    rustix::thread::sched_setaffinity(None, &cpus).expect("pin the thread to core 0");
}

/// Runs `f` on a thread pinned to core 0 beside `spinners` threads spinning there at normal
/// priority until `spin_for` has passed or `f` returned; answers `f`'s result and how long it took.
fn beside_spinners<T: Send + 'static>(
    spinners: usize,
    spin_for: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let spinning: Vec<_> = (0..spinners)
        .map(|_| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                pin_to_core_0();
                while !done.load(Relaxed) && started.elapsed() < spin_for {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    // Let the spinners take the core first.
    std::thread::sleep(Duration::from_millis(10));
    let result = std::thread::spawn(move || {
        pin_to_core_0();
        let started = Instant::now();
        let result = f();
        (result, started.elapsed())
    })
    .join()
    .unwrap();
    done.store(true, Relaxed);
    spinning.into_iter().for_each(|s| s.join().unwrap());
    result
}

#[test]
fn waiting_for_a_core_does_not_count_against_the_deadline() {
    assert!(crate::priority::core_wait().is_some(), "the kernel does not report run-queue waits");
    let dir = tempfile::tempdir().unwrap();
    // A 50 ms deadline; lowered to idle priority after 1 ms of CPU time.
    let config = RuntimeConfig { yield_after: Some(Duration::from_millis(1)), ..test_config() };
    let runtime = Arc::new(Runtime::new(config, dir.path()).expect("runtime"));
    let handler = handler(&runtime);
    let busy = move || call(&runtime, &handler, validate(12)).0;

    // Alone, the bounded busy loop (about 15 ms) fits in the deadline.
    let (result, alone) = beside_spinners(0, Duration::ZERO, busy.clone());
    assert_eq!(result, Ok(Outcome::Accepted), "after {alone:?}");

    // Beside two threads spinning on its core for 300 ms, the call is lowered after 1 ms and
    // gets the core back only when they stop: far past its 50 ms deadline in wall-clock time,
    // but it waited, it did not run. (Counted in wall-clock time, it ended in a timeout.)
    let (result, elapsed) = beside_spinners(2, Duration::from_millis(300), busy);
    assert_eq!(result, Ok(Outcome::Accepted), "after {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(250), "the call did not wait for the spinners: {elapsed:?}");

    // Waiting moves a deadline by nine times it at most: a loop (no yield) beside 30 spinners
    // runs a 31st of the time, so it would reach 50 ms of running after 1.5 s; it ends at about
    // 50 + 450 ms instead.
    let config = RuntimeConfig { yield_after: None, ..test_config() };
    let runtime = Arc::new(Runtime::new(config, dir.path()).expect("runtime"));
    let handler = self::handler(&runtime);
    let looping = move || call(&runtime, &handler, validate(2)).0;
    let (result, elapsed) = beside_spinners(30, Duration::from_secs(5), looping);
    assert_eq!(result, Err(CallError::Timeout { limit: Duration::from_millis(50) }));
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1200),
        "the loop ended after {elapsed:?}, not at its deadline moved by at most 450 ms"
    );
}

#[test]
fn a_handler_whose_last_call_ran_long_starts_the_next_one_lowered() {
    let dir = tempfile::tempdir().unwrap();
    // Lowered after 5 ms of CPU time; the bounded busy loop takes about 15 ms.
    let config = RuntimeConfig { yield_after: Some(Duration::from_millis(5)), ..test_config() };
    let runtime = Arc::new(Runtime::new(config, dir.path()).expect("runtime"));
    let handler = handler(&runtime);
    // Each call's outcome, and whether it ran at idle priority.
    let on_thread = |behaviour: usize| {
        let call = on_a_fresh_thread(&runtime, &handler, behaviour);
        (call.result, call.lowered)
    };
    assert!(!handler.runs_long());
    assert_eq!(on_thread(0), (Ok(Outcome::Accepted), false), "a short call keeps its priority");
    assert!(!handler.runs_long());
    assert_eq!(on_thread(12), (Ok(Outcome::Accepted), true), "a long call is lowered once past yield_after");
    assert!(handler.runs_long());
    // The next call is lowered from its start, short or not; being short, it clears the mark.
    assert_eq!(on_thread(0), (Ok(Outcome::Accepted), true));
    assert!(!handler.runs_long());
    assert_eq!(on_thread(0), (Ok(Outcome::Accepted), false));
}

#[test]
fn per_call_limits_are_tighter_never_looser() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { deadline: Duration::from_secs(5), ..test_config() };
    let runtime = Runtime::new(config, dir.path()).unwrap();
    let handler = handler(&runtime);
    let limited = |deadline_ms: u64, memory: usize, behaviour: usize| {
        let limits = CallLimits {
            deadline: Some(Duration::from_millis(deadline_ms)),
            max_memory_bytes: Some(memory),
            job: false,
        };
        let (host, _) = TestHost::boxed();
        call_one(&runtime, &handler, host, validate(behaviour), limits).0
    };
    let started = Instant::now();
    assert_eq!(limited(50, 32 << 20, 2), Err(CallError::Timeout { limit: Duration::from_millis(50) }));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(limited(5000, 1 << 20, 3), Err(CallError::MemoryLimit { limit_bytes: 1 << 20 }));
    // Asking for more than the runtime allows gets the runtime's limit.
    assert_eq!(limited(5000, 1 << 30, 3), Err(CallError::MemoryLimit { limit_bytes: 32 << 20 }));
    assert_eq!(limited(50, 1 << 20, 0), Ok(Outcome::Accepted));
}

#[test]
fn fuel_budget_stops_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { fuel: Some(1_000_000), deadline: Duration::from_secs(5), ..test_config() };
    let runtime = Runtime::new(config, dir.path()).unwrap();
    let handler = handler(&runtime);
    let started = Instant::now();
    let (result, _) = call(&runtime, &handler, validate(2));
    assert_eq!(result, Err(CallError::OutOfFuel { fuel: 1_000_000 }));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
}

#[test]
fn concurrent_calls_share_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { max_concurrent_calls: 2, deadline: Duration::from_secs(2), ..test_config() };
    let runtime = Runtime::new(config, dir.path()).unwrap();
    let handler = handler(&runtime);
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (runtime, handler) = (runtime.clone(), Arc::clone(&handler));
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn digests_are_stable_and_compiling_twice_compiles_once() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let first = runtime.compile(guest()).unwrap();
    let second = runtime.compile(guest()).unwrap();
    assert_eq!(first, second);
    let expected: String = Sha256::digest(guest()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first.digest, expected);
    assert_eq!(first.size, guest().len());
    assert_eq!(runtime.compiled_count(), 1);
    let artifacts: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let name = artifacts[0].to_str().unwrap();
    assert!(name.starts_with(&format!("{expected}-")) && name.ends_with(".cwasm"), "{name}");
}

#[test]
fn a_restart_loads_the_artifact_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let digest = {
        let first = runtime(dir.path());
        let digest = first.compile(guest()).unwrap().digest;
        assert_eq!(first.compiled_count(), 1);
        digest
    };
    let second = runtime(dir.path());
    let handler = second.load(&digest).expect("loaded from the cache directory");
    assert_eq!(handler.digest(), digest);
    assert_eq!(call(&second, &handler, validate(1)).0.map(|o| matches!(o, Outcome::Refused(_))), Ok(true));
    // Compiling the same bytes again finds the loaded handler.
    assert_eq!(second.compile(guest()).unwrap().digest, digest);
    assert_eq!(second.compiled_count(), 0);

    // A third runtime compiling the bytes deserializes the artifact instead of compiling.
    let third = runtime(dir.path());
    assert_eq!(third.compile(guest()).unwrap().digest, digest);
    assert_eq!(third.compiled_count(), 0);
}

#[test]
fn load_refuses_bad_digests_and_unusable_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    assert!(matches!(runtime.load("../../etc/passwd"), Err(RuntimeError::InvalidDigest(_))));
    assert!(matches!(runtime.load(&"A".repeat(64)), Err(RuntimeError::InvalidDigest(_))));
    let unknown = "0".repeat(64);
    assert!(matches!(runtime.load(&unknown), Err(RuntimeError::NotCompiled(d)) if d == unknown));

    // A corrupt artifact is deleted and reported as not compiled; compiling again fixes it.
    let digest = runtime.compile(guest()).unwrap().digest;
    let artifact = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&artifact, b"not an artifact").unwrap();
    let fresh = super::Runtime::new(test_config(), dir.path()).unwrap();
    assert!(matches!(fresh.load(&digest), Err(RuntimeError::NotCompiled(_))));
    assert!(!artifact.exists());
    fresh.compile(guest()).unwrap();
    assert_eq!(fresh.compiled_count(), 1);
    assert!(fresh.load(&digest).is_ok());

    // Evicting forgets the in-memory handler; the artifact brings it back.
    assert!(fresh.evict(&digest));
    assert!(!fresh.evict(&digest));
    assert!(fresh.load(&digest).is_ok());
    assert_eq!(fresh.compiled_count(), 1);
}

#[test]
fn artifacts_of_another_engine_are_pruned_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(format!("{}-0000000000000000.cwasm", "a".repeat(64)));
    let unrelated = dir.path().join("notes.txt");
    std::fs::write(&stale, b"old").unwrap();
    std::fs::write(&unrelated, b"keep").unwrap();
    let _runtime = runtime(dir.path());
    assert!(!stale.exists());
    assert!(unrelated.exists());
}

#[test]
fn uploads_that_are_not_handler_components_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let refuse = |bytes: &[u8]| runtime.compile(bytes).unwrap_err();

    assert_eq!(refuse(b"hello, world"), UploadError::NotWasm);
    assert_eq!(refuse(&wat::parse_str("(module)").unwrap()), UploadError::NotAComponent);
    assert!(matches!(refuse(b"\0asm\x0d\x00\x01\x00garbage"), UploadError::Invalid(_)));

    let big = RuntimeConfig { max_component_bytes: 100, ..test_config() };
    let small = Runtime::new(big, dir.path()).unwrap();
    assert_eq!(small.compile(guest()).unwrap_err(), UploadError::TooLarge { size: guest().len(), max: 100 });

    // A precompiled artifact is never accepted from a client.
    let precompiled = wasmtime::Engine::default().precompile_component(guest()).unwrap();
    assert_eq!(refuse(&precompiled), UploadError::Precompiled);

    // A component without the handler export.
    let empty = wat::parse_str("(component)").unwrap();
    assert!(matches!(refuse(&empty), UploadError::World(m) if m.contains("ocni:handler/handler")));

    // WASI interfaces the host does not offer (it offers io, cli, clocks, random, and
    // filesystem and sockets that deny everything: `a_locked_down_wasi_is_linked`).
    for (import, why) in [
        ("wasi:http/outgoing-handler@0.2.6", "no network"),
        ("wasi:http/types@0.2.0", "no network"),
        ("wasi:keyvalue/store@0.2.0-draft", "not given"),
        ("wasi:cli/run@0.2.6", "not given"),
        ("evil:host/escape", "not part of ocni:handler"),
    ] {
        let bytes = wat::parse_str(format!(r#"(component (import "{import}" (instance)))"#)).unwrap();
        match refuse(&bytes) {
            UploadError::Import { import: name, reason } => {
                assert_eq!(name, import);
                assert!(reason.contains(why), "{import}: {reason}");
            }
            other => panic!("{import}: {other:?}"),
        }
    }

    // An offered interface with the wrong shape fails the linker's type check.
    let wrong = wat::parse_str(
        r#"(component (import "ocni:handler/log@0.1.0" (instance (export "write" (func (param "x" u32))))))"#,
    )
    .unwrap();
    assert!(matches!(refuse(&wrong), UploadError::World(_)));

    // A memory larger than the limit at start is refused at upload (by the pool's check when
    // compiling, or by the trial instantiation).
    let fat = refuse(&guest_component(1000));
    assert!(matches!(&fat, UploadError::Invalid(m) | UploadError::Limits(m) if m.contains("memory")), "{fat:?}");

    assert_eq!(runtime.compiled_count(), 7);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "refused uploads leave no artifact");
}

#[test]
fn compilation_is_bounded_by_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig { compile_timeout: Duration::from_nanos(1), ..test_config() };
    let runtime = Runtime::new(config, dir.path()).unwrap();
    assert_eq!(runtime.compile(guest()).unwrap_err(), UploadError::CompileTimeout(Duration::from_nanos(1)));
    assert_eq!(runtime.compiled_count(), 0);
}

#[test]
fn a_handler_of_another_runtime_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (runtime(a.path()), runtime(b.path()));
    let handler = handler(&first);
    assert!(matches!(call(&second, &handler, validate(0)).0, Err(CallError::Internal(_))));
}

/// The smallest handler of the world: no imports, every export answers from zeroed memory
/// (`validate` accepts, the others answer `ok` with no changes); `extra` is spliced into the module.
fn minimal_wat(extra: &str) -> String {
    let entity = "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32";
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (then unreachable))
    (local.get $ptr))
  (func (export "ocni:handler/handler@0.1.0#validate") (param {entity} i32) (result i32) (i32.const 1024))
  (func (export "ocni:handler/handler@0.1.0#on-create") (param {entity}) (result i32) (i32.const 1024))
  (func (export "ocni:handler/handler@0.1.0#on-update") (param i32) (result i32) (i32.const 1024))
  (func (export "ocni:handler/handler@0.1.0#on-delete") (param {entity}) (result i32) (i32.const 1024))
  (func (export "ocni:handler/handler@0.1.0#on-action") (param {entity} i32 i32 i32 i32) (result i32) (i32.const 1024))
  {extra}
)"#
    )
}

/// A core module as a component of the handler world as released in 0.1.0.
fn componentize(wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/released/0.1.0");
    let (package, _) = resolve.push_path(&wit).expect("the released 0.1.0 WIT");
    componentize_in(wat, resolve, package)
}

/// A core module as a component of the handler world of the WIT `wit` (the released 0.1.1 one
/// with `None`: the host, now at 0.1.2, must still find its `actions` export).
fn componentize_011(wat: &str, wit: Option<&str>) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/released/0.1.1");
    let package = match wit {
        None => resolve.push_path(&dir).expect("the released 0.1.1 WIT").0,
        Some(text) => resolve.push_str("handler.wit", text).expect("the test WIT"),
    };
    componentize_in(wat, resolve, package)
}

fn componentize_in(wat: &str, resolve: wit_parser::Resolve, package: wit_parser::PackageId) -> Vec<u8> {
    let mut module = wat::parse_str(wat).expect("core module WAT");
    let world = resolve.select_world(&[package], Some("handler-world")).expect("handler-world");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("embedding WIT metadata");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("module")
        .encode()
        .expect("componentizing")
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads an unsigned LEB128 at the start of `bytes`: (value, its length).
fn read_leb128(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0;
    for (i, byte) in bytes.iter().enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("truncated LEB128");
}

/// `component` (binary) with `copies` more core instances of the core module `module_wat`: a core
/// module section and a core instance section appended by hand (the `wat` crate cannot nest a
/// binary component, and appending needs no knowledge of the component's imports).
fn with_extra_core_instances(component: &[u8], module_wat: &str, copies: usize) -> Vec<u8> {
    // The appended module's index is the number of core modules the component defines: one per
    // core module section (id 1) at the top level, which is where wit-component puts them all.
    let (mut modules, mut at) = (0, 8);
    while at < component.len() {
        let id = component[at];
        let (size, len) = read_leb128(&component[at + 1..]);
        modules += usize::from(id == 1);
        at += 1 + len + size;
    }
    let mut bytes = component.to_vec();
    let module = wat::parse_str(module_wat).expect("extra core module");
    bytes.push(1);
    leb128(module.len(), &mut bytes);
    bytes.extend_from_slice(&module);
    // Core instance section: `copies` times (instantiate module, no arguments).
    let mut instances = Vec::new();
    leb128(copies, &mut instances);
    for _ in 0..copies {
        instances.push(0x00);
        leb128(modules, &mut instances);
        instances.push(0x00);
    }
    bytes.push(2);
    leb128(instances.len(), &mut bytes);
    bytes.extend_from_slice(&instances);
    bytes
}

#[test]
fn too_many_memories_or_instances_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let refuse = |bytes: &[u8]| runtime.compile(bytes).unwrap_err();

    // The pool is sized per call from `max_memories` (2), `max_instances` (20) and one memory
    // per core module; wasmtime checks a component against it when compiling it, so all of these
    // are refused at upload, before anything runs.
    // One core module with three memories (wit-component accepts multi-memory modules).
    let three = refuse(&componentize(&minimal_wat("(memory 1) (memory 1)")));
    assert!(
        matches!(&three, UploadError::Invalid(m)
            if m.contains("defined memories count of 3 exceeds the per-instance limit of 1")),
        "{three:?}"
    );
    // The test guest plus two instances of a module with its own memory: three memories.
    let memories = with_extra_core_instances(guest(), "(module (memory 1))", 2);
    let memories = refuse(&memories);
    assert!(
        matches!(&memories, UploadError::Invalid(m)
            if m.contains("3 Wasm linear memories, which exceeds the configured maximum of 2")),
        "{memories:?}"
    );
    // The test guest plus twenty instances of an empty module.
    let instances = refuse(&with_extra_core_instances(guest(), "(module)", 20));
    assert!(
        matches!(&instances, UploadError::Invalid(m)
            if m.contains("core module instances, which exceeds the configured maximum of 20")),
        "{instances:?}"
    );
    // The same extras within the limits are fine: the refusals are about the counts.
    let within = with_extra_core_instances(guest(), "(module (memory 1))", 1);
    let handler = runtime.load(&runtime.compile(&within).expect("one extra memory fits").digest).unwrap();
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
    let within = with_extra_core_instances(guest(), "(module)", 5);
    let handler = runtime.load(&runtime.compile(&within).expect("five extra instances fit").digest).unwrap();
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "refused uploads leave no artifact");

    // A lower configured limit refuses the plain test guest (a few core instances) the same way.
    let one = RuntimeConfig { max_instances: 1, ..test_config() };
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = Runtime::new(one, strict_dir.path()).unwrap();
    let refused = strict.compile(guest()).unwrap_err();
    assert!(
        matches!(&refused, UploadError::Invalid(m) if m.contains("which exceeds the configured maximum of 1 ")),
        "{refused:?}"
    );
}

/// `n` functions of `body` copies of a small arithmetic statement each: valid, useless, and slow
/// for Cranelift (1000 x 20 take about 3 s in a debug build on 2 cores).
fn bomb_funcs(n: usize, body: usize) -> String {
    let statement = "(local.set 1 (i32.add (i32.mul (local.get 0) (local.get 1)) (i32.const 7)))\n".repeat(body);
    format!("(func (param i32) (result i32) (local i32)\n{statement}(local.get 1))\n").repeat(n)
}

#[test]
fn a_compile_bomb_is_bounded_and_calls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    // The test guest, compiled by a runtime with the default timeout into the shared cache
    // directory, so the runtime under test loads it without compiling.
    let digest = runtime(dir.path()).compile(guest()).unwrap().digest;
    let timeout = Duration::from_millis(200);
    // Calls share this machine's cores with the compilation's threads and the other tests: a
    // 250 ms deadline (the slowest call is typically 5-30 ms here) still catches calls that wait
    // for the compilation, which takes seconds.
    let deadline = Duration::from_millis(250);
    let config = RuntimeConfig { compile_timeout: timeout, max_concurrent_compiles: 1, deadline, ..test_config() };
    let runtime = Runtime::new(config, dir.path()).unwrap();
    let handler = runtime.load(&digest).unwrap();

    // Seconds of compiling, with the optimized code generator of the dev profile too.
    let bomb = componentize(&minimal_wat(&bomb_funcs(10_000, 20)));
    let (done, finished) = std::sync::mpsc::channel();
    let uploader = {
        let runtime = runtime.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = runtime.compile(&bomb);
            let elapsed = started.elapsed();
            done.send(()).unwrap();
            (result, elapsed)
        })
    };
    // Calls go on, within their deadline, while the bomb compiles...
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    let mut call_ok = || {
        let started = Instant::now();
        assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
        slowest = slowest.max(started.elapsed());
        calls += 1;
    };
    while finished.try_recv().is_err() {
        call_ok();
    }
    let (result, elapsed) = uploader.join().unwrap();
    assert_eq!(result, Err(UploadError::CompileTimeout(timeout)));
    assert!(elapsed < Duration::from_secs(1), "the upload was answered after {elapsed:?}");

    // ...and while it goes on compiling past the timeout: it keeps the only compile slot, so
    // uploads are refused as busy until it ends; then a new (small) upload compiles again.
    let small = componentize(&minimal_wat(""));
    assert_eq!(runtime.compile(&small), Err(UploadError::Busy));
    let waited = Instant::now();
    let compiled = loop {
        assert!(waited.elapsed() < Duration::from_secs(15), "the compile slot stayed taken");
        match runtime.compile(&small) {
            Ok(compiled) => break compiled,
            // A loaded machine may slow even the small compile past 200 ms.
            Err(UploadError::Busy | UploadError::CompileTimeout(_)) => {
                call_ok();
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    eprintln!(
        "compile bomb: refused after {elapsed:?}, slot free {:?} later; {calls} calls meanwhile, slowest {slowest:?}",
        waited.elapsed()
    );
    let small = runtime.load(&compiled.digest).unwrap();
    assert_eq!(call(&runtime, &small, validate(0)).0, Ok(Outcome::Accepted));
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
}

/// The test guest built against 0.1.1, with `actions.applicable`, whose answer picks a
/// behaviour from the number of mixins: 0 every action it was given, 1 all but the first, 2 a
/// trap, 3 the first ones, as many as the entity has attributes (so the answer shows whether
/// the hook's changes were applied to the entity it got).
fn guest_011() -> Vec<u8> {
    let applicable = r#"
  (func (export "ocni:handler/actions@0.1.1#applicable")
    (param $loc i32) (param $loc_len i32) (param $id i32) (param $id_len i32) (param $kind i32) (param $kind_len i32)
    (param $mixins i32) (param $n i32) (param $attrs i32) (param $attrs_len i32) (param $actions i32) (param $len i32)
    (result i32)
    (if (i32.eq (local.get $n) (i32.const 2)) (then unreachable))
    (if (i32.eq (local.get $n) (i32.const 1))
      (then (local.set $actions (i32.add (local.get $actions) (i32.const 8)))
            (local.set $len (i32.sub (local.get $len) (i32.const 1)))))
    (if (i32.and (i32.eq (local.get $n) (i32.const 3)) (i32.lt_u (local.get $attrs_len) (local.get $len)))
      (then (local.set $len (local.get $attrs_len))))
    (i32.store (i32.const 2048) (local.get $actions))
    (i32.store (i32.const 2052) (local.get $len))
    (i32.const 2048))
)"#;
    let wat = guest_wat(1).replace("@0.1.0", "@0.1.1");
    let wat = format!("{}{applicable}", wat.trim_end().strip_suffix(')').expect("module ends with )"));
    componentize_011(&wat, None)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("http://example.org/a#{i}")).collect()
}

#[test]
fn entity_view_apply_sets_and_removes_in_order() {
    let mut e = entity(0);
    e.apply(&[
        ChangeView::Set(AttributeView::new("occi.compute.state", ValueView::Text("active".into()))),
        ChangeView::Set(AttributeView::new("occi.compute.cores", ValueView::Integer(4))),
        ChangeView::Remove("x.on".into()),
        ChangeView::Remove("absent".into()),
        ChangeView::Set(AttributeView::new("a.first", ValueView::Boolean(false))),
    ]);
    let got: Vec<(&str, &ValueView)> = e.attributes.iter().map(|a| (a.name.as_str(), &a.value)).collect();
    assert_eq!(
        got,
        [
            ("a.first", &ValueView::Boolean(false)),
            ("occi.compute.cores", &ValueView::Integer(4)),
            ("occi.compute.speed", &ValueView::Number(2.5)),
            ("occi.compute.state", &ValueView::Text("active".into())),
            ("occi.core.title", &ValueView::Text("web".into())),
            ("x.tags", &ValueView::Json("[1,2]".into())),
        ]
    );
}

/// A component built against 0.1.0 has no `actions` export: it links and runs as before, and
/// `applicable` answers "no say" without calling into it.
#[test]
fn a_010_component_has_no_say_on_actions() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let handler = handler(&runtime);
    assert!(!handler.has_actions());
    let (host, _) = TestHost::boxed();
    let calls = vec![
        validate(0),
        Call::Create { entity: entity(0) },
        Call::Applicable { entity: entity(0), actions: names(3) },
    ];
    let (result, _) = runtime.call_each(&handler, host, calls, CallLimits::default());
    let outcomes = result.unwrap();
    assert_eq!(outcomes[0], Outcome::Accepted);
    assert!(matches!(&outcomes[1], Outcome::Changes(c) if c.len() == 2), "{outcomes:?}");
    assert_eq!(outcomes[2], Outcome::Applicable(None));
}

/// A 0.1.1 component's `applicable` is called on the same instance after the hook, and sees
/// the entity with the hook's changes applied; a trap in it fails the whole call.
#[test]
fn applicable_runs_after_the_hook_and_sees_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let compiled = runtime.compile(&guest_011()).expect("the 0.1.1 guest compiles");
    let handler = runtime.load(&compiled.digest).unwrap();
    assert!(handler.has_actions());
    let each = |calls: Vec<Call>| {
        let (host, _) = TestHost::boxed();
        runtime.call_each(&handler, host, calls, CallLimits::default()).0
    };
    let ask = |behaviour: usize| Call::Applicable { entity: entity(behaviour), actions: names(8) };

    assert_eq!(each(vec![ask(0)]), Ok(vec![Outcome::Applicable(Some(names(8)))]));
    assert_eq!(each(vec![ask(1)]), Ok(vec![Outcome::Applicable(Some(names(8)[1..].to_vec()))]));
    // entity(3) has 5 attributes; on-create sets occi.compute.state (a sixth) and removes the
    // absent `foo`: `applicable` sees 6.
    assert_eq!(each(vec![ask(3)]), Ok(vec![Outcome::Applicable(Some(names(5)))]));
    let outcomes = each(vec![validate(0), Call::Create { entity: entity(3) }, ask(3)]).unwrap();
    assert_eq!(outcomes[2], Outcome::Applicable(Some(names(6))), "{outcomes:?}");
    // A refusal before it: `applicable` is not asked.
    assert!(matches!(each(vec![validate(1), ask(0)]).unwrap().as_slice(), [Outcome::Refused(_)]));
    let trapped = each(vec![validate(0), Call::Create { entity: entity(2) }, ask(2)]);
    assert!(matches!(trapped, Err(CallError::Trap(_))), "{trapped:?}");
    // The 0.1.1 component's other exports work as the 0.1.0 ones do.
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
}

/// An `actions` export of the wrong shape is refused at upload, not taken for its absence.
#[test]
fn an_actions_export_of_the_wrong_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let wit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/released/0.1.1/handler.wit"))
            .unwrap();
    let signature = "applicable: func(entity: entity, actions: list<string>) -> list<string>;";
    assert!(wit.contains(signature));
    let wit = wit.replace(signature, "applicable: func(entity: entity) -> u32;");
    let wat = minimal_wat(
        r#"(func (export "ocni:handler/actions@0.1.1#applicable") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32) (i32.const 0))"#,
    )
    .replace("@0.1.0", "@0.1.1");
    let refused = runtime.compile(&componentize_011(&wat, Some(&wit))).unwrap_err();
    assert!(matches!(&refused, UploadError::World(m) if m.contains("export `actions`")), "{refused:?}");
}

/// A component built against the released 0.1.2 WIT (before jobs) still links and runs, has
/// no `job-runner`, and an attempt at a job on it fails cleanly instead of trapping.
#[test]
fn a_component_of_0_1_2_links_and_runs_no_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(dir.path());
    let wit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/released/0.1.2/handler.wit"))
            .unwrap();
    assert!(wit.contains("package ocni:handler@0.1.2;") && !wit.contains("job-runner"));
    // `applicable` answers the empty list (pointer and length 0 at 1024).
    let params = "i32 ".repeat(12);
    let applicable = format!(
        r#"(func (export "ocni:handler/actions@0.1.0#applicable") (param {params}) (result i32) (i32.const 1024))"#
    );
    let wat = minimal_wat(&applicable).replace("@0.1.0", "@0.1.2");
    let compiled = runtime.compile(&componentize_011(&wat, Some(&wit))).unwrap();
    let handler = runtime.load(&compiled.digest).unwrap();
    assert!(handler.has_actions() && !handler.has_job_runner());
    assert_eq!(call(&runtime, &handler, validate(0)).0, Ok(Outcome::Accepted));
    let job = crate::JobView {
        id: "j".into(),
        name: "n".into(),
        payload: String::new(),
        entity: entity(0),
        attempt: 1,
        max_attempts: 1,
    };
    let limits = CallLimits { job: true, ..CallLimits::default() };
    let (outcome, _) = runtime.call_each(&handler, Box::new(NullHost), vec![Call::Job { job }], limits);
    assert!(matches!(outcome.as_deref(), Ok([Outcome::Failed(m)]) if m.contains("job-runner")), "{outcome:?}");
}
