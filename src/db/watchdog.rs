//! Bounds a blocking libpq call from outside: past its deadline the
//! connection's socket is shut down (not closed: libpq still owns the
//! descriptor), so libpq's `poll()` returns and the call fails with a closed
//! connection. diesel gives no access to libpq's socket, so it is found when
//! the connection is established.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A connection's socket: its descriptor, and the socket's inode, so a
/// descriptor that libpq closed and the process reused is left alone.
#[derive(Debug, Clone, Copy)]
pub(super) struct Socket {
    fd: RawFd,
    inode: u64,
}

#[derive(Default)]
struct State {
    next: u64,
    armed: BTreeMap<u64, (Instant, Socket)>,
    fired: HashSet<u64>,
}

struct Watchdog {
    state: Mutex<State>,
    wake: Condvar,
}

static WATCHDOG: LazyLock<Arc<Watchdog>> = LazyLock::new(|| {
    let dog = Arc::new(Watchdog {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    });
    let watching = dog.clone();
    #[allow(
        clippy::expect_used,
        reason = "at start, before any request: without the thread no PostgreSQL wait is bounded"
    )]
    std::thread::Builder::new()
        .name("db-watchdog".into())
        .spawn(move || watching.watch())
        .expect("spawn the database watchdog thread");
    dog
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Watchdog {
    fn watch(&self) {
        let mut state = lock(&self.state);
        loop {
            let now = Instant::now();
            let earliest = state
                .armed
                .iter()
                .min_by_key(|(_, (deadline, _))| *deadline)
                .map(|(id, (deadline, socket))| (*id, *deadline, *socket));
            state = match earliest {
                None => self.wake.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some((id, deadline, socket)) if deadline <= now => {
                    // Under the lock: the call is still running (its guard
                    // disarms under the same lock before the connection can
                    // be dropped), so libpq has not closed the descriptor
                    // unless the connection already failed; the inode tells.
                    state.armed.remove(&id);
                    state.fired.insert(id);
                    if inode(socket.fd) == Some(socket.inode) {
                        shut_down(socket.fd);
                    }
                    state
                }
                Some((_, deadline, _)) => {
                    self.wake
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

fn shut_down(fd: RawFd) {
    // shutdown(2) works on any socket; ManuallyDrop leaves the descriptor
    // open for libpq to close.
    let socket = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

fn inode(fd: RawFd) -> Option<u64> {
    let file = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    file.metadata().ok().map(|m| m.ino())
}

/// A deadline on a socket; disarm it when the call returns.
pub(super) struct Armed {
    id: u64,
}

pub(super) fn arm(socket: Socket, limit: Duration) -> Armed {
    let dog = &*WATCHDOG;
    let mut state = lock(&dog.state);
    let id = state.next;
    state.next += 1;
    state.armed.insert(id, (Instant::now() + limit, socket));
    drop(state);
    dog.wake.notify_one();
    Armed { id }
}

impl Armed {
    /// Whether the deadline passed and the socket was shut.
    pub(super) fn disarm(self) -> bool {
        let mut state = lock(&WATCHDOG.state);
        state.armed.remove(&self.id);
        state.fired.remove(&self.id)
    }
}

/// Establishments to one server, one at a time, so the socket that appears
/// while one runs is its own: per server, a flag set while one runs.
static ESTABLISHING: LazyLock<Mutex<HashMap<String, Arc<AtomicBool>>>> =
    LazyLock::new(Mutex::default);

/// This server's turn to establish, given back on drop.
struct Turn(Arc<AtomicBool>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Waits for this server's turn. One establishment that hangs (opened just
/// as the server froze or failed over, it waits out libpq's
/// `connect_timeout`) holds up the others for at most `patience`: then its
/// gate is replaced by a new one. Its socket predates every later
/// establishment's snapshot, so it is not mistaken for theirs.
fn turn(server: &str, patience: Duration) -> Turn {
    loop {
        let gate = lock(&ESTABLISHING)
            .entry(server.to_owned())
            .or_default()
            .clone();
        let waited = Instant::now();
        while waited.elapsed() < patience {
            if gate
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Turn(gate);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut gates = lock(&ESTABLISHING);
        if gates.get(server).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            gates.insert(server.to_owned(), Arc::default());
        }
    }
}

/// Runs `establish` and finds the socket it opened: the one socket
/// descriptor that is new afterwards and connected to the URL's port. None
/// when that is not one socket (another connection to the same server
/// opened outside the pool at the same moment) or off Linux; such a
/// connection is bounded by libpq's own limits only.
pub(super) fn establish_and_find_socket<T>(
    url: &str,
    patience: Duration,
    establish: impl FnOnce() -> T,
) -> (T, Option<Socket>) {
    let parsed = url::Url::parse(url).ok();
    let port = parsed.as_ref().and_then(|u| u.port()).unwrap_or(5432);
    let server = parsed
        .as_ref()
        .map(|u| format!("{}:{port}", u.host_str().unwrap_or("")))
        .unwrap_or_else(|| url.to_owned());
    let _one_at_a_time = turn(&server, patience);
    let before = sockets();
    let established = establish();
    let found: Vec<Socket> = sockets()
        .difference(&before)
        .filter(|(fd, _)| connected_to_port(*fd, port))
        .map(|(fd, inode)| Socket {
            fd: *fd,
            inode: *inode,
        })
        .collect();
    match found.as_slice() {
        [socket] => (established, Some(*socket)),
        _ => (established, None),
    }
}

/// Open socket descriptors with their inodes (a reused number is a new one).
fn sockets() -> HashSet<(RawFd, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
        // The link reads `socket:[INODE]`.
        let target = std::fs::read_link(entry.path()).ok()?;
        let inode = target
            .to_str()?
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        Some((fd, inode))
    })
    .collect()
}

fn connected_to_port(fd: RawFd, port: u16) -> bool {
    let tcp = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    if let Ok(peer) = tcp.peer_addr() {
        return peer.port() == port;
    }
    let unix = ManuallyDrop::new(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) });
    unix.peer_addr().ok().and_then(|a| {
        a.as_pathname()
            .map(|p| p.to_string_lossy().ends_with(&format!(".s.PGSQL.{port}")))
    }) == Some(true)
}
