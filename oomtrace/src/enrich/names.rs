//! Container names people know (`docker ps` NAMES, the image, compose
//! labels), asked from the container's own runtime after the kill:
//!
//! - Docker: the Engine API on its unix socket, `GET /containers/<id>/json`
//!   (read-only; the unversioned path is the daemon's own API version, so
//!   no negotiation and no minimum-version refusal from newer daemons).
//! - podman: its Docker-compatible API socket when the service runs
//!   (`podman system service`), else containers/storage's own record of
//!   the container (`overlay-containers/containers.json`: names and the
//!   image name, no labels).
//!
//! Every lookup is bounded: [`LOOKUP_BUDGET`] for the whole socket
//! exchange, so a hung daemon delays a record by at most that, once per
//! container (answers are cached per id); after a timeout the socket is
//! left alone for [`BACKOFF`], so a kill storm in a hung daemon's
//! containers is not slowed kill after kill. Whatever is not found in time
//! is `null`, never guessed.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap, VecDeque},
    fs,
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::report::{Service, ServiceKind};

/// The most one socket lookup (connect, request, whole answer) may take.
pub const LOOKUP_BUDGET: Duration = Duration::from_millis(150);
/// How long a socket that timed out is not asked again.
pub const BACKOFF: Duration = Duration::from_secs(30);
/// Containers whose answer is kept (a node runs a few hundred at most).
const CACHE_ENTRIES: usize = 1024;
/// An inspect answer is a few KiB; more is not a Docker API.
const MAX_ANSWER: usize = 4 << 20;
/// containers/storage's record of every container on the host.
const MAX_CONTAINERS_JSON: u64 = 64 << 20;

/// Where the runtimes keep their sockets and state (flags, so a pod can
/// mount them elsewhere).
#[derive(Debug, Clone)]
pub struct Sources {
    pub docker_socket: PathBuf,
    pub podman_socket: PathBuf,
    /// containers/storage's graph root (`/var/lib/containers/storage`).
    pub podman_storage: PathBuf,
    /// containerd's state directory (`/run/containerd`), whose task
    /// directories say a `/<namespace>/<id>` cgroup is containerd's.
    pub containerd_state: PathBuf,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            docker_socket: "/var/run/docker.sock".into(),
            podman_socket: "/run/podman/podman.sock".into(),
            podman_storage: "/var/lib/containers/storage".into(),
            containerd_state: "/run/containerd".into(),
        }
    }
}

/// What a runtime says about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub name: Option<String>,
    pub image: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Why a lookup gave nothing; only timeouts and failures are worth a word.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The runtime is not there (no socket): nothing to say.
    #[error("no socket")]
    Absent,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl From<io::Error> for LookupError {
    fn from(error: io::Error) -> LookupError {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                LookupError::Timeout(LOOKUP_BUDGET)
            }
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => LookupError::Absent,
            _ => LookupError::Io(error),
        }
    }
}

/// The runtimes' answers, cached per container id.
pub struct ContainerNames {
    sources: Sources,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    cache: HashMap<(ServiceKind, String), Names>,
    /// Insertion order, for evicting the oldest.
    order: VecDeque<(ServiceKind, String)>,
    /// Per socket: not asked again before this.
    backoff: HashMap<PathBuf, Instant>,
    /// Lookups that ran out of time (said on stderr, with the count).
    timeouts: u64,
}

impl ContainerNames {
    pub fn new(sources: Sources) -> ContainerNames {
        ContainerNames {
            sources,
            state: RefCell::default(),
        }
    }

    /// Lookups that ran out of time since start.
    pub fn timeouts(&self) -> u64 {
        self.state.borrow().timeouts
    }

    /// A containerd container outside Kubernetes: a `/<namespace>/<id>`
    /// cgroup whose task containerd runs (its shim's bundle directory).
    /// containerd keeps names and images in its metadata database, behind
    /// its gRPC API: they stay `null`.
    pub fn containerd(&self, path: &str) -> Option<Service> {
        let (namespace, id) = super::workload::containerd_shape(path)?;
        let task = self
            .sources
            .containerd_state
            .join("io.containerd.runtime.v2.task")
            .join(namespace)
            .join(id);
        task.is_dir()
            .then(|| Service::from_path(ServiceKind::ContainerdContainer, id.to_string()))
    }

    /// Fills a container service's names; units are left as they are.
    pub fn fill(&self, service: &mut Service) {
        if !matches!(
            service.kind,
            ServiceKind::DockerContainer | ServiceKind::PodmanContainer | ServiceKind::PodmanConmon
        ) {
            return;
        }
        let kind = match service.kind {
            ServiceKind::PodmanConmon => ServiceKind::PodmanContainer,
            kind => kind,
        };
        let key = (kind, service.name.clone());
        let cached = self.state.borrow().cache.get(&key).cloned();
        let names = match cached {
            Some(names) => names,
            None => {
                let (names, keep) = self.look_up(kind, &service.name);
                if keep {
                    self.remember(key, names.clone());
                }
                names
            }
        };
        service.container_name = names.name;
        service.image = names.image;
        service.labels = names.labels;
    }

    fn remember(&self, key: (ServiceKind, String), names: Names) {
        let mut state = self.state.borrow_mut();
        if state.cache.insert(key.clone(), names).is_none() {
            state.order.push_back(key);
        }
        while state.order.len() > CACHE_ENTRIES {
            if let Some(oldest) = state.order.pop_front() {
                state.cache.remove(&oldest);
            }
        }
    }

    /// The names, and whether the answer is worth keeping (a daemon that
    /// answered, even "no such container"; not one that timed out).
    fn look_up(&self, kind: ServiceKind, id: &str) -> (Names, bool) {
        match kind {
            ServiceKind::DockerContainer => {
                match self.ask_socket(&self.sources.docker_socket.clone(), id) {
                    Ok(names) => (names, true),
                    Err(_) => (Names::default(), false),
                }
            }
            ServiceKind::PodmanContainer => {
                if let Ok(names) = self.ask_socket(&self.sources.podman_socket.clone(), id) {
                    return (names, true);
                }
                let path = self
                    .sources
                    .podman_storage
                    .join("overlay-containers/containers.json");
                match read_bounded(&path, MAX_CONTAINERS_JSON) {
                    // The same container keeps its names: found is kept, not
                    // found may be a container created since.
                    Ok(text) => match podman_storage_names(&text, id) {
                        Some(names) => (names, true),
                        None => (Names::default(), false),
                    },
                    Err(_) => (Names::default(), false),
                }
            }
            _ => (Names::default(), false),
        }
    }

    fn ask_socket(&self, socket: &Path, id: &str) -> Result<Names, LookupError> {
        let now = Instant::now();
        if self
            .state
            .borrow()
            .backoff
            .get(socket)
            .is_some_and(|until| now < *until)
        {
            return Err(LookupError::Timeout(LOOKUP_BUDGET));
        }
        let result = inspect(socket, id, now + LOOKUP_BUDGET);
        match &result {
            Err(LookupError::Timeout(_)) => {
                let mut state = self.state.borrow_mut();
                state.timeouts += 1;
                state.backoff.insert(socket.to_path_buf(), now + BACKOFF);
                eprintln!(
                    "oomtrace: warning: {} did not answer within {LOOKUP_BUDGET:?}; the record's container name is null, and the socket is not asked again for {BACKOFF:?} ({} timeouts so far)",
                    socket.display(),
                    state.timeouts,
                );
            }
            // E.g. EACCES without the docker group: the same next time,
            // so said once per backoff, not once per container.
            Err(LookupError::Io(error)) => {
                self.state
                    .borrow_mut()
                    .backoff
                    .insert(socket.to_path_buf(), now + BACKOFF);
                eprintln!(
                    "oomtrace: warning: cannot ask {} about a container ({error}); container names are null, and the socket is not asked again for {BACKOFF:?}",
                    socket.display()
                );
            }
            Err(LookupError::Protocol(what)) => eprintln!(
                "oomtrace: warning: {} gave an unexpected answer about a container: {what}",
                socket.display()
            ),
            Err(LookupError::Absent) | Ok(_) => {}
        }
        result
    }
}

/// `GET /containers/<id>/json` on a Docker-API socket, all of it before
/// `deadline`. A container the daemon does not know (404) has no names.
pub fn inspect(socket: &Path, id: &str, deadline: Instant) -> Result<Names, LookupError> {
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(LookupError::Protocol(format!("not a container id: {id:?}")));
    }
    let answer = get(socket, &format!("/containers/{id}/json"), deadline)?;
    match answer.status {
        200 => {
            let inspect: Inspect = serde_json::from_slice(&answer.body)
                .map_err(|e| LookupError::Protocol(format!("inspect JSON: {e}")))?;
            Ok(inspect.names())
        }
        404 => Ok(Names::default()),
        status => Err(LookupError::Protocol(format!("HTTP {status}"))),
    }
}

/// What `docker inspect` says that we use.
#[derive(Debug, Deserialize)]
struct Inspect {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Config")]
    config: Option<InspectConfig>,
}

#[derive(Debug, Deserialize)]
struct InspectConfig {
    #[serde(rename = "Image")]
    image: Option<String>,
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

impl Inspect {
    fn names(self) -> Names {
        let (image, labels) = match self.config {
            Some(config) => (
                config.image.filter(|i| !i.is_empty()),
                Some(selected_labels(config.labels.unwrap_or_default())),
            ),
            None => (None, None),
        };
        Names {
            // The API writes names with a leading `/`; `docker ps` without.
            name: self
                .name
                .map(|n| n.trim_start_matches('/').to_string())
                .filter(|n| !n.is_empty()),
            image,
            labels,
        }
    }
}

/// The labels that name a workload: compose's project and service, and
/// what the kubelet (dockershim, cri-dockerd) writes.
fn selected_labels(labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(key, _)| {
            matches!(
                key.as_str(),
                "com.docker.compose.project" | "com.docker.compose.service"
            ) || key.starts_with("io.kubernetes.")
        })
        .collect()
}

/// One entry of containers/storage's `containers.json`.
#[derive(Debug, Deserialize)]
struct StorageContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    /// A JSON document in a string: podman keeps `image-name` and `name`
    /// there.
    #[serde(default)]
    metadata: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StorageMetadata {
    #[serde(rename = "image-name")]
    image_name: Option<String>,
    name: Option<String>,
}

/// Names for `id` from containers/storage's record; `None` when it is not
/// there. Labels live in podman's own database, not here: `null`.
fn podman_storage_names(containers_json: &str, id: &str) -> Option<Names> {
    let containers: Vec<StorageContainer> = serde_json::from_str(containers_json).ok()?;
    let container = containers.into_iter().find(|c| c.id == id)?;
    let metadata: StorageMetadata = container
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    Some(Names {
        name: metadata
            .name
            .or_else(|| container.names.into_iter().next())
            .filter(|n| !n.is_empty()),
        image: metadata.image_name.filter(|i| !i.is_empty()),
        labels: None,
    })
}

fn read_bounded(path: &Path, limit: u64) -> io::Result<String> {
    let mut text = String::new();
    fs::File::open(path)?
        .take(limit)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// An HTTP/1.0 GET: the daemon answers and closes, with no chunked body
/// (Go's server only chunks for HTTP/1.1). The event loop is synchronous
/// where records are enriched, so this is a plain socket with deadlines,
/// not an async client on a second runtime.
fn get(socket: &Path, path: &str, deadline: Instant) -> Result<Answer, LookupError> {
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(LookupError::Timeout(LOOKUP_BUDGET))
    };
    if !socket.exists() {
        return Err(LookupError::Absent);
    }
    // A unix-socket connect does not block on a listening socket unless its
    // backlog is full; the read and write deadlines bound the rest.
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    loop {
        stream.set_read_timeout(Some(remaining()?))?;
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if answer.len() > MAX_ANSWER {
            return Err(LookupError::Protocol(format!(
                "answer over {MAX_ANSWER} bytes"
            )));
        }
    }
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> Result<Answer, LookupError> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| LookupError::Protocol("no end of headers".into()))?;
    let head = std::str::from_utf8(&answer[..split])
        .map_err(|_| LookupError::Protocol("headers are not text".into()))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LookupError::Protocol("no status line".into()))?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = &answer[split + 4..];
    let body = if chunked {
        dechunk(body).ok_or_else(|| LookupError::Protocol("bad chunked body".into()))?
    } else {
        body.to_vec()
    };
    Ok(Answer { status, body })
}

/// A chunked body (should a proxy in front of the socket answer that way).
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&body[..end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        body = &body[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_answers_give_name_image_and_workload_labels() {
        let json = r#"{"Id":"4f3b","Name":"/shop-api","Config":{"Image":"shop/api:1.4",
            "Labels":{"com.docker.compose.project":"shop","com.docker.compose.service":"api",
            "io.kubernetes.pod.name":"cart","maintainer":"someone"}}}"#;
        let names = serde_json::from_str::<Inspect>(json)
            .expect("parses")
            .names();
        assert_eq!(names.name.as_deref(), Some("shop-api"));
        assert_eq!(names.image.as_deref(), Some("shop/api:1.4"));
        let labels = names.labels.expect("labels");
        assert_eq!(
            labels.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "com.docker.compose.project",
                "com.docker.compose.service",
                "io.kubernetes.pod.name"
            ]
        );
        // No labels at all is known to be none, not unknown.
        let bare = r#"{"Name":"/x","Config":{"Image":"busybox","Labels":null}}"#;
        let names = serde_json::from_str::<Inspect>(bare)
            .expect("parses")
            .names();
        assert_eq!(names.labels, Some(BTreeMap::new()));
        let no_config = r#"{"Name":""}"#;
        assert_eq!(
            serde_json::from_str::<Inspect>(no_config)
                .expect("parses")
                .names(),
            Names::default()
        );
    }

    #[test]
    fn answers_are_read_plain_or_chunked() {
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\n";
        assert_eq!(
            parse_answer(plain).expect("parses"),
            Answer {
                status: 200,
                body: b"{\"a\":1}\n".to_vec()
            }
        );
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_answer(chunked).expect("parses"),
            Answer {
                status: 404,
                body: b"{\"a\":1}".to_vec()
            }
        );
        for bad in [
            &b"HTTP/1.0 200 OK\r\n"[..],
            b"SSH-2.0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn podman_storage_names_the_container_and_its_image() {
        // containers/storage's layout (overlay-containers/containers.json).
        let json = r#"[{"id":"aaaa","names":["other"],"image":"1234","layer":"l1",
            "metadata":"{\"image-name\":\"docker.io/library/alpine:latest\",\"image-id\":\"1234\",\"name\":\"other\",\"created-at\":1}"},
            {"id":"bbbb","names":["web-1"],"image":"5678","layer":"l2",
            "metadata":"{\"image-name\":\"quay.io/shop/web:2\",\"name\":\"web-1\"}"},
            {"id":"cccc","names":["bare"]}]"#;
        assert_eq!(
            podman_storage_names(json, "bbbb"),
            Some(Names {
                name: Some("web-1".into()),
                image: Some("quay.io/shop/web:2".into()),
                labels: None,
            })
        );
        assert_eq!(
            podman_storage_names(json, "cccc").and_then(|n| n.name),
            Some("bare".into())
        );
        assert_eq!(podman_storage_names(json, "dddd"), None);
        assert_eq!(podman_storage_names("not json", "bbbb"), None);
    }

    #[test]
    fn no_socket_is_absent_and_fast() {
        let start = Instant::now();
        let result = inspect(
            Path::new("/nonexistent/docker.sock"),
            "abc",
            start + LOOKUP_BUDGET,
        );
        assert!(matches!(result, Err(LookupError::Absent)), "{result:?}");
        assert!(start.elapsed() < LOOKUP_BUDGET);
        assert!(matches!(
            inspect(Path::new("/x"), "../../etc", start + LOOKUP_BUDGET),
            Err(LookupError::Protocol(_))
        ));
    }

    /// A daemon that accepts and never answers: the lookup gives up at its
    /// deadline, counts the timeout, and leaves the socket alone after.
    #[test]
    fn a_silent_daemon_costs_one_budget_then_nothing() {
        let dir = std::env::temp_dir().join(format!("oomtrace-names-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("docker.sock");
        let _ = fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let names = ContainerNames::new(Sources {
            docker_socket: socket.clone(),
            ..Sources::default()
        });
        let id = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";
        let mut service = Service::from_path(ServiceKind::DockerContainer, id.into());
        let start = Instant::now();
        names.fill(&mut service);
        let took = start.elapsed();
        assert!(
            took >= LOOKUP_BUDGET && took < LOOKUP_BUDGET * 3,
            "{took:?}"
        );
        assert_eq!((service.container_name, names.timeouts()), (None, 1));
        let start = Instant::now();
        let mut again = Service::from_path(ServiceKind::DockerContainer, id.into());
        names.fill(&mut again);
        assert!(start.elapsed() < LOOKUP_BUDGET, "backed off");
        drop(listener);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_cache_keeps_the_newest_entries_only() {
        let names = ContainerNames::new(Sources::default());
        for i in 0..CACHE_ENTRIES + 10 {
            let name = Names {
                name: Some(format!("c{i}")),
                ..Names::default()
            };
            names.remember((ServiceKind::DockerContainer, format!("{i:064x}")), name);
        }
        let state = names.state.borrow();
        assert_eq!(
            (state.cache.len(), state.order.len()),
            (CACHE_ENTRIES, CACHE_ENTRIES)
        );
        let oldest = (ServiceKind::DockerContainer, format!("{:064x}", 0));
        let newest = (
            ServiceKind::DockerContainer,
            format!("{:064x}", CACHE_ENTRIES + 9),
        );
        assert!(!state.cache.contains_key(&oldest));
        assert_eq!(
            state.cache.get(&newest).and_then(|n| n.name.clone()),
            Some(format!("c{}", CACHE_ENTRIES + 9))
        );
    }

    /// Without podman's socket, containers/storage's file names it.
    #[test]
    fn podman_without_its_socket_is_named_from_storage() {
        let dir =
            std::env::temp_dir().join(format!("oomtrace-names-storage-{}", std::process::id()));
        fs::create_dir_all(dir.join("overlay-containers")).expect("temp dir");
        let id = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";
        fs::write(
            dir.join("overlay-containers/containers.json"),
            format!(
                r#"[{{"id":"{id}","names":["web-1"],"metadata":"{{\"image-name\":\"quay.io/shop/web:2\",\"name\":\"web-1\"}}"}}]"#
            ),
        )
        .expect("write");
        let names = ContainerNames::new(Sources {
            podman_socket: dir.join("podman.sock"),
            podman_storage: dir.clone(),
            ..Sources::default()
        });
        let mut service = Service::from_path(ServiceKind::PodmanContainer, id.into());
        names.fill(&mut service);
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            (
                service.container_name.as_deref(),
                service.image.as_deref(),
                service.labels
            ),
            (Some("web-1"), Some("quay.io/shop/web:2"), None)
        );
    }

    /// A conmon is named like the container it monitors (one cache entry).
    #[test]
    fn a_conmon_shares_its_containers_answer() {
        let names = ContainerNames::new(Sources {
            podman_socket: "/nonexistent/podman.sock".into(),
            podman_storage: "/nonexistent".into(),
            ..Sources::default()
        });
        let id = "4f3b7d8ce2a9c1b0d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8";
        names.remember(
            (ServiceKind::PodmanContainer, id.into()),
            Names {
                name: Some("web-1".into()),
                image: Some("quay.io/shop/web:2".into()),
                labels: None,
            },
        );
        let mut conmon = Service::from_path(ServiceKind::PodmanConmon, id.into());
        names.fill(&mut conmon);
        assert_eq!(
            (
                conmon.kind,
                conmon.container_name.as_deref(),
                conmon.image.as_deref()
            ),
            (
                ServiceKind::PodmanConmon,
                Some("web-1"),
                Some("quay.io/shop/web:2")
            )
        );
    }

    #[test]
    fn units_are_not_looked_up() {
        let names = ContainerNames::new(Sources::default());
        let mut unit = Service::from_path(ServiceKind::SystemdService, "nginx.service".into());
        names.fill(&mut unit);
        assert_eq!(
            unit,
            Service::from_path(ServiceKind::SystemdService, "nginx.service".into())
        );
    }
}
