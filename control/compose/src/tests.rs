//! What a user checks after `stack deploy`: the tutorial's file, docker's full example, errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use shoal_spec::{
    EndpointMode, FailureAction, Mount, NetworkAttachmentConfig, PortConfig, Protocol, PublishMode,
    RestartCondition, ServiceSpec, UpdateOrder, SECOND_NS,
};

use crate::{load, ComposeError, Stack};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> (String, String) {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path.to_string_lossy().into_owned(), text)
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One file named `docker-compose.yml` in the fixtures directory, stack `app`.
fn load_yaml(yaml: &str) -> Result<Stack, ComposeError> {
    load_yaml_env(yaml, &no_env())
}

fn load_yaml_env(yaml: &str, env: &BTreeMap<String, String>) -> Result<Stack, ComposeError> {
    let path = fixtures().join("docker-compose.yml");
    load(
        "app",
        &[(path.to_string_lossy().into_owned(), yaml.to_string())],
        env,
    )
}

/// The error text for a file named `docker-compose.yml` (the directory is left out).
fn error(yaml: &str) -> String {
    let path = fixtures().join("docker-compose.yml");
    let e = load(
        "app",
        &[("docker-compose.yml".to_string(), yaml.to_string())],
        &no_env(),
    )
    .expect_err("the file should be refused");
    let text = e.to_string();
    assert!(
        !text.contains(path.to_string_lossy().as_ref()),
        "error names the file as given: {text}"
    );
    text
}

fn service<'a>(stack: &'a Stack, name: &str) -> &'a ServiceSpec {
    stack
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no service {name} in {:?}", names(stack)))
}

fn names(stack: &Stack) -> Vec<&str> {
    stack.services.iter().map(|s| s.name.as_str()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The tutorial's file deploys as `docker stack deploy -c docker-compose.swarm.yml webapp`
/// would: two scoped services, scoped volumes, one overlay network, the `build` warning.
#[test]
fn seed_file_loads_as_docker_deploys_it() {
    let (path, text) = fixture("docker-compose.swarm.yml");
    let stack = load("webapp", &[(path, text)], &no_env()).unwrap();

    assert_eq!(names(&stack), ["webapp_db", "webapp_web"]);
    assert_eq!(stack.warnings, ["Ignoring unsupported options: build"]);

    let db = service(&stack, "webapp_db");
    let c = &db.task_template.container_spec;
    assert_eq!(c.image, "mysql:latest");
    assert_eq!(c.hostname, "db");
    assert_eq!(
        c.args,
        ["--default-authentication-plugin=mysql_native_password"]
    );
    assert!(c.command.is_empty());
    assert_eq!(
        c.env,
        [
            "MYSQL_DATABASE=registry",
            "MYSQL_PASSWORD=demo123",
            "MYSQL_ROOT_PASSWORD=admin123",
            "MYSQL_USER=demo",
        ]
    );
    let restart = db.task_template.restart_policy.as_ref().unwrap();
    assert_eq!(restart.condition, Some(RestartCondition::None));
    assert_eq!(db.mode.replicas(), Some(1));
    let placement = db.task_template.placement.as_ref().unwrap();
    assert_eq!(placement.constraints, ["node.hostname == vm1"]);

    let [bind, volume] = &c.mounts[..] else {
        panic!("two mounts expected: {:?}", c.mounts)
    };
    assert_eq!(bind.kind, "bind");
    assert!(Path::new(&bind.source).is_absolute(), "{}", bind.source);
    assert!(bind.source.ends_with("/initdb.d"), "{}", bind.source);
    assert!(!bind.source.contains("/./"), "{}", bind.source);
    assert_eq!(bind.target, "/docker-entrypoint-initdb.d");
    assert!(!bind.read_only);
    assert_eq!(
        volume,
        &Mount {
            kind: "volume".into(),
            source: "webapp_dbdata".into(),
            target: "/var/lib/mysql".into(),
            read_only: false,
        }
    );
    assert_eq!(
        db.task_template.networks,
        [NetworkAttachmentConfig {
            target: "webapp_default".into(),
            aliases: strings(&["db"]),
        }]
    );
    assert_eq!(db.labels["com.docker.stack.namespace"], "webapp");
    assert_eq!(db.labels["com.docker.stack.image"], "mysql:latest");
    assert_eq!(c.labels["com.docker.stack.namespace"], "webapp");

    let web = service(&stack, "webapp_web");
    let endpoint = web.endpoint_spec.as_ref().unwrap();
    assert_eq!(endpoint.mode, EndpointMode::Vip);
    assert_eq!(
        endpoint.ports,
        [PortConfig {
            protocol: Protocol::Tcp,
            target_port: 80,
            published_port: Some(8080),
            publish_mode: PublishMode::Ingress,
            ..Default::default()
        }]
    );
    assert_eq!(
        web.task_template.placement.as_ref().unwrap().constraints,
        ["node.hostname == vm2", "node.labels.os == linux"]
    );
    assert_eq!(
        web.task_template.networks,
        [NetworkAttachmentConfig {
            target: "webapp_default".into(),
            aliases: strings(&["web"]),
        }]
    );
    assert_eq!(
        web.task_template.container_spec.mounts[0].source,
        "webapp_weblog"
    );
    assert_eq!(
        web.labels["com.docker.stack.image"],
        "docker-registry.dccn.nl:5000/demo_user_register:1.0"
    );
    // No restart policy given: swarm's default applies.
    assert_eq!(web.task_template.restart_policy, None);

    let [net] = &stack.networks[..] else {
        panic!("one network expected: {:?}", stack.networks)
    };
    assert_eq!(net.name, "webapp_default");
    assert_eq!(net.key, "default");
    assert_eq!(net.driver, "overlay");
    assert!(!net.external);
    assert_eq!(net.labels["com.docker.stack.namespace"], "webapp");
    let vols: Vec<&str> = stack.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vols, ["webapp_dbdata", "webapp_weblog"]);
    assert_eq!(
        stack.volumes[0].labels["com.docker.stack.namespace"],
        "webapp"
    );

    // What `service inspect` would show, in docker's JSON shape.
    let v = serde_json::to_value(web).unwrap();
    assert_eq!(v["Name"], "webapp_web");
    assert_eq!(
        v["EndpointSpec"]["Ports"][0],
        json!({"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"})
    );
    assert_eq!(v["Mode"], json!({"Replicated": {"Replicas": 1}}));
}

/// docker's own full example (every 3.13 key) loads, with docker's warnings.
#[test]
fn docker_full_example_loads() {
    let (path, text) = fixture("full-example.yml");
    let stack = load(
        "full",
        &[(path, text)],
        &env(&[("HOME", "/home/foo"), ("QUX", "qux_from_environment")]),
    )
    .unwrap();
    assert_eq!(
        stack.warnings,
        [
            "ignoring IP-address (127.0.0.1:8001:8001/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5000:5000/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5001:5001/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5002:5002/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5003:5003/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5004:5004/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5005:5005/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5006:5006/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5007:5007/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5008:5008/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5009:5009/tcp) service will listen on '0.0.0.0'",
            "ignoring IP-address (127.0.0.1:5010:5010/tcp) service will listen on '0.0.0.0'",
            "network other-external-network: network.external.name is deprecated in favor of network.name",
            "volume other-external-volume: volume.external.name is deprecated in favor of volume.name",
            "secret secret2: secret.external.name is deprecated in favor of secret.name",
            "config config2: config.external.name is deprecated in favor of config.name",
            "Ignoring unsupported options: build, cgroup_parent, devices, domainname, external_links, ipc, links, mac_address, network_mode, pid, privileged, restart, security_opt",
            "Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n\nexpose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
            "Ignoring options not supported by shoal yet: logging, networks.other-network.driver_opts.baz, networks.other-network.driver_opts.foo, stdin_open, tty, volumes.another-volume.driver, volumes.another-volume.driver_opts, volumes.cluster-volume.driver, volumes.other-volume.driver, volumes.other-volume.driver_opts",
        ]
    );
    let foo = service(&stack, "full_foo");
    let c = &foo.task_template.container_spec;
    assert_eq!(c.image, "redis");
    assert_eq!(c.command, ["/code/entrypoint.sh", "-p", "3000"]);
    assert_eq!(c.args, ["bundle", "exec", "thin", "-p", "3000"]);
    assert_eq!(c.user, "someone");
    assert_eq!(c.dir, "/code");
    assert_eq!(c.stop_grace_period, Some(20 * SECOND_NS));
    // The container options, as docker's convert makes them.
    let v = serde_json::to_value(c).unwrap();
    assert_eq!(
        v["Hosts"],
        json!([
            "162.242.195.82 somehost",
            "50.31.209.229 otherhost",
            "host-gateway host.docker.internal"
        ])
    );
    assert_eq!(
        v["DNSConfig"],
        json!({"Nameservers": ["8.8.8.8", "9.9.9.9"], "Search": ["dc1.example.com", "dc2.example.com"]})
    );
    assert_eq!(
        v["Sysctls"],
        json!({"net.core.somaxconn": "1024", "net.ipv4.tcp_syncookies": "0"})
    );
    assert_eq!(
        v["Ulimits"],
        json!([{"Name": "nofile", "Hard": 40000, "Soft": 20000}, {"Name": "nproc", "Hard": 65535, "Soft": 65535}])
    );
    assert_eq!(v["CapabilityAdd"], json!(["ALL"]));
    assert_eq!(
        v["CapabilityDrop"],
        json!(["CAP_NET_ADMIN", "CAP_SYS_ADMIN"])
    );
    assert_eq!(
        (v["ReadOnly"].clone(), v["TTY"].clone()),
        (json!(true), json!(true))
    );
    // env files in order, then `environment:`; a bare key takes the caller's value.
    assert_eq!(
        c.env,
        [
            "BAR=bar_from_env_file_2",
            "BAZ=baz_from_service_def",
            "FOO=foo_from_env_file",
            "QUX=qux_from_environment",
        ]
    );
    assert_eq!(c.labels["com.example.number"], "42");
    assert_eq!(c.labels["com.example.empty-label"], "");
    let hc = c.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, ["CMD-SHELL", "echo \"hello world\""]);
    assert_eq!(
        (hc.interval, hc.timeout, hc.start_period, hc.retries),
        (10 * SECOND_NS, SECOND_NS, 15 * SECOND_NS, 5)
    );

    let workdir = fixtures();
    let mounts: Vec<(&str, String, &str, bool)> = c
        .mounts
        .iter()
        .map(|m| {
            let source = m
                .source
                .strip_prefix(workdir.to_string_lossy().as_ref())
                .map(|rest| format!("<dir>{rest}"))
                .unwrap_or_else(|| m.source.clone());
            (m.kind.as_str(), source, m.target.as_str(), m.read_only)
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("volume", String::new(), "/var/lib/mysql", false),
            ("bind", "/opt/data".into(), "/var/lib/mysql", false),
            ("bind", "<dir>".into(), "/code", false),
            ("bind", "<dir>/static".into(), "/var/www/html", false),
            ("bind", "/home/foo/configs".into(), "/etc/configs/", true),
            ("volume", "full_datavolume".into(), "/var/lib/mysql", false),
            ("bind", "<dir>/opt".into(), "/opt", false),
            ("tmpfs", String::new(), "/opt", false),
        ]
    );

    let ports: Vec<(u16, Option<u16>)> = foo
        .endpoint_spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .map(|p| (p.target_port, p.published_port))
        .collect();
    let mut expected = vec![(3000, None)];
    expected.extend((3001..=3005).map(|p| (p, None)));
    expected.extend((5000..=5010).map(|p| (p, Some(p))));
    expected.extend([
        (8000, Some(8000)),
        (8001, Some(8001)),
        (8080, Some(9090)),
        (8081, Some(9091)),
        (22, Some(49100)),
    ]);
    assert_eq!(ports, expected);

    let deploy_mode = foo.mode.replicas();
    assert_eq!(deploy_mode, Some(6));
    assert_eq!(foo.labels["FOO"], "BAR");
    let update = foo.update_config.as_ref().unwrap();
    assert_eq!(update.parallelism, 3);
    assert_eq!(update.delay, 10 * SECOND_NS);
    assert_eq!(update.failure_action, FailureAction::Continue);
    assert_eq!(update.monitor, 60 * SECOND_NS);
    assert!((update.max_failure_ratio - 0.3).abs() < 1e-6);
    assert_eq!(update.order, UpdateOrder::StartFirst);
    let resources = foo.task_template.resources.as_ref().unwrap();
    let limits = resources.limits.as_ref().unwrap();
    assert_eq!(
        (limits.nano_cpus, limits.memory_bytes, limits.pids),
        (1_000_000, 50 << 20, 100)
    );
    let reservations = resources.reservations.as_ref().unwrap();
    assert_eq!(
        (reservations.nano_cpus, reservations.memory_bytes),
        (100_000, 20 << 20)
    );
    let restart = foo.task_template.restart_policy.as_ref().unwrap();
    assert_eq!(restart.condition, Some(RestartCondition::OnFailure));
    assert_eq!(restart.delay, Some(5 * SECOND_NS));
    assert_eq!(restart.max_attempts, Some(3));
    assert_eq!(restart.window, Some(120 * SECOND_NS));
    let placement = foo.task_template.placement.as_ref().unwrap();
    assert_eq!(placement.max_replicas, 5);
    assert_eq!(
        placement.preferences[0].spread.spread_descriptor,
        "node.labels.az"
    );
    assert_eq!(
        foo.endpoint_spec.as_ref().unwrap().mode,
        EndpointMode::Dnsrr
    );

    let attachments: Vec<(&str, Vec<String>)> = foo
        .task_template
        .networks
        .iter()
        .map(|n| (n.target.as_str(), n.aliases.clone()))
        .collect();
    assert_eq!(
        attachments,
        [
            ("full_other-network", strings(&["foo"])),
            ("full_other-other-network", strings(&["foo"])),
            ("full_some-network", strings(&["alias1", "alias3", "foo"])),
        ]
    );
    let other = stack
        .networks
        .iter()
        .find(|n| n.key == "other-network")
        .unwrap();
    assert_eq!(other.subnet.as_deref(), Some("172.16.238.0/24"));
    assert_eq!(other.driver_opts["baz"], "1");
    assert_eq!(other.labels["foo"], "bar");
    let names = |objects: &[crate::ObjectDecl]| -> Vec<String> {
        objects.iter().map(|o| o.name.clone()).collect()
    };
    assert_eq!(
        names(&stack.secrets),
        ["bar", "full_secret1", "my_secret", "secret3"]
    );
    let secret1 = &stack.secrets[1];
    assert!(!secret1.external);
    assert!(secret1.file.as_deref().unwrap().ends_with("/secret_data"));
    assert_eq!(secret1.labels["foo"], "bar");
    assert_eq!(secret1.labels[crate::LABEL_NAMESPACE], "full");
    assert!(stack.secrets[2].external && stack.secrets[2].file.is_none());
    // The service's references: scoped (or declared) names, docker's defaults, sorted.
    let foo = service(&stack, "full_foo");
    let refs = &foo.task_template.container_spec.secrets;
    let got: Vec<(String, shoal_spec::FileTarget)> = refs
        .iter()
        .map(|r| (r.secret_name.clone(), r.file.clone().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "full_secret1".to_string(),
                shoal_spec::FileTarget::new("secret1")
            ),
            (
                "my_secret".to_string(),
                shoal_spec::FileTarget {
                    name: "my_secret".into(),
                    uid: "103".into(),
                    gid: "103".into(),
                    mode: 0o440,
                }
            ),
        ]
    );
    let configs = &foo.task_template.container_spec.configs;
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[1].file.as_ref().unwrap().name, "/my_config");
    assert_eq!(configs[1].file.as_ref().unwrap().mode, 0o440);
}

#[test]
fn unknown_keys_are_schema_errors() {
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    foo: 1\n"),
        "docker-compose.yml: services.web Additional property foo is not allowed"
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    deploy:\n      replica: 2\n"),
        "docker-compose.yml: services.web.deploy Additional property replica is not allowed"
    );
    assert_eq!(
        error("servics:\n  web:\n    image: nginx\n"),
        "docker-compose.yml: (root) Additional property servics is not allowed"
    );
    assert_eq!(
        error("services: {}\nnetworks:\n  front:\n    drivr: overlay\n"),
        "docker-compose.yml: networks.front Additional property drivr is not allowed"
    );
    assert_eq!(
        error("services:\n  web:\n    image: [nginx]\n"),
        "docker-compose.yml: services.web.image must be a string"
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    deploy:\n      replicas: two\n"),
        "docker-compose.yml: services.web.deploy.replicas must be a integer"
    );
    // Extension keys are ignored everywhere docker allows them.
    load_yaml("x-common: &c {a: 1}\nservices:\n  web:\n    image: nginx\n    x-note: hi\n")
        .unwrap();
}

#[test]
fn forbidden_keys_are_refused_with_docker_hints() {
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    mem_limit: 512m\n"),
        "docker-compose.yml: compose file contains unsupported options:\n\nmem_limit: Set resource limits using deploy.resources\n"
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    volumes_from: [db]\n    cpu_shares: 2\n"),
        "docker-compose.yml: compose file contains unsupported options:\n\n\
         cpu_shares: Set resource limits using deploy.resources\n\n\
         volumes_from: To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.\n"
    );
}

#[test]
fn warned_keys_are_ignored() {
    let stack = load_yaml(
        "services:\n  web:\n    image: nginx\n    links: [db]\n    privileged: true\n    container_name: web1\n    expose: [80]\n",
    )
    .unwrap();
    assert_eq!(
        stack.warnings,
        [
            "Ignoring unsupported options: links, privileged",
            "Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n\nexpose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
        ]
    );
}

/// Keys docker applies and Shoal does not yet are named, not dropped in silence; unset or
/// false ones, the overlay's MTU option and a local volume are not.
#[test]
fn keys_shoal_does_not_apply_are_named() {
    let stack = load_yaml(
        "services:\n  web:\n    image: nginx\n    build: .\n    cap_add: [NET_ADMIN]\n    read_only: false\n    tty: true\n    dns: []\n    secrets: [s]\n    volumes: [v:/data, w:/w]\n    networks: [n]\nnetworks:\n  n:\n    driver_opts:\n      encrypted: \"true\"\n      com.docker.network.driver.mtu: 1400\nvolumes:\n  v:\n    driver: local\n    driver_opts: {type: nfs, o: addr=10.0.0.1, device: \":/export\"}\n  w:\n    driver: local\nsecrets:\n  s:\n    file: ./s.txt\n",
    )
    .unwrap();
    assert_eq!(
        stack.warnings,
        [
            "Ignoring unsupported options: build",
            "Ignoring options not supported by shoal yet: networks.n.driver_opts.encrypted, tty, volumes.v.driver_opts",
        ]
    );
    let quiet =
        load_yaml("services:\n  web:\n    image: nginx\n    init: false\n    oom_score_adj: 0\n")
            .unwrap();
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
}

#[test]
fn bad_port() {
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    ports: [\"80:x\"]\n"),
        "docker-compose.yml: services.web.ports[0]: invalid port \"80:x\": invalid containerPort: x"
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    ports:\n      - 80\n      - target: 80\n        published: 70000\n"),
        "docker-compose.yml: services.web.ports[1].published: invalid port 70000: value out of range (0–65535)"
    );
}

#[test]
fn ports_short_and_long() {
    let stack = load_yaml(
        "services:\n  web:\n    image: nginx\n    ports:\n      - 8080:80/udp\n      - \"9000-9001:90-91\"\n      - target: 443\n        published: 8443\n        mode: host\n      - 53\n      - target: 81\n        mode: host\n",
    )
    .unwrap();
    let ports: Vec<(u16, Option<u16>, Protocol, PublishMode)> = stack.services[0]
        .endpoint_spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .map(|p| (p.target_port, p.published_port, p.protocol, p.publish_mode))
        .collect();
    use Protocol::*;
    use PublishMode::*;
    assert_eq!(
        ports,
        [
            (53, None, Tcp, Ingress),
            (81, None, Tcp, Host),
            (80, Some(8080), Udp, Ingress),
            (443, Some(8443), Tcp, Host),
            (90, Some(9000), Tcp, Ingress),
            (91, Some(9001), Tcp, Ingress),
        ]
    );
}

#[test]
fn bad_constraint_names_its_place() {
    let e = error(
        "services:\n  web:\n    image: nginx\n    deploy:\n      placement:\n        constraints: [\"node.hostname = vm1\"]\n",
    );
    assert_eq!(
        e,
        "docker-compose.yml: services.web.deploy.placement.constraints[0]: constraint expected one operator from ==, !="
    );
    // Keys swarmkit takes load, those no node has too (their tasks stay pending).
    for ok in [
        "engine.labels.x != y",
        "node.ip == 10.0.0.0/8",
        "node.foo == x",
    ] {
        let yaml = format!(
            "services:\n  web:\n    image: nginx\n    deploy:\n      placement:\n        constraints: [\"{ok}\"]\n"
        );
        assert!(
            load(
                "app",
                &[("docker-compose.yml".to_string(), yaml)],
                &no_env()
            )
            .is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn undefined_network_and_volume() {
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    networks: [front]\n"),
        "docker-compose.yml: services.web.networks[0]: undefined network \"front\""
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    volumes: [\"data:/data\"]\n"),
        "docker-compose.yml: services.web.volumes[0]: undefined volume \"data\""
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    secrets: [key]\n"),
        "docker-compose.yml: services.web.secrets[0]: undefined secret \"key\""
    );
}

#[test]
fn modes() {
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    deploy:\n      mode: global\n      replicas: 2\n"),
        "docker-compose.yml: services.web.deploy: replicas can only be used with replicated or replicated-job mode"
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    deploy:\n      mode: everywhere\n"),
        "docker-compose.yml: services.web.deploy.mode: unknown mode: everywhere"
    );
    assert!(error(
        "services:\n  web:\n    image: nginx\n    deploy:\n      mode: replicated-job\n"
    )
    .contains("unsupported mode: replicated-job"),);
    let stack = load_yaml("services:\n  web:\n    image: nginx\n    deploy:\n      mode: global\n")
        .unwrap();
    assert!(stack.services[0].mode.is_global());
}

#[test]
fn durations_and_memory_units() {
    let stack = load_yaml(
        "services:
  web:
    image: nginx
    stop_grace_period: 1m30s
    healthcheck:
      test: [\"CMD\", \"curl\", \"-f\", \"http://localhost\"]
      interval: 500ms
      timeout: 1h
      start_period: 1.5s
      retries: 3
    deploy:
      resources:
        limits: {cpus: '0.5', memory: 512M}
        reservations: {cpus: '0.25', memory: 100m}
      update_config: {delay: 10s}
      restart_policy: {delay: 2s, window: 1m}
  big:
    image: nginx
    deploy:
      resources:
        limits: {memory: 1g, pids: 50}
",
    )
    .unwrap();
    let web = service(&stack, "app_web");
    let c = &web.task_template.container_spec;
    assert_eq!(c.stop_grace_period, Some(90 * SECOND_NS));
    let hc = c.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test, ["CMD", "curl", "-f", "http://localhost"]);
    assert_eq!(hc.interval, SECOND_NS / 2);
    assert_eq!(hc.timeout, 3600 * SECOND_NS);
    assert_eq!(hc.start_period, 1_500_000_000);
    assert_eq!(hc.retries, 3);
    let r = web.task_template.resources.as_ref().unwrap();
    let (l, res) = (r.limits.as_ref().unwrap(), r.reservations.as_ref().unwrap());
    assert_eq!(
        (l.nano_cpus, l.memory_bytes),
        (500_000_000, 512 * 1024 * 1024)
    );
    assert_eq!(
        (res.nano_cpus, res.memory_bytes),
        (250_000_000, 100 * 1024 * 1024)
    );
    let update = web.update_config.as_ref().unwrap();
    assert_eq!(update.delay, 10 * SECOND_NS);
    // Unset fields keep swarm's defaults.
    assert_eq!(update.parallelism, 1);
    assert_eq!(update.monitor, 5 * SECOND_NS);
    let restart = web.task_template.restart_policy.as_ref().unwrap();
    assert_eq!(
        (restart.delay, restart.window),
        (Some(2 * SECOND_NS), Some(60 * SECOND_NS))
    );
    assert_eq!(restart.condition, None);
    let big = service(&stack, "app_big");
    let l = big
        .task_template
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!((l.memory_bytes, l.pids), (1 << 30, 50));

    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    stop_grace_period: 10\n"),
        "docker-compose.yml: services.web.stop_grace_period must be a string"
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    stop_grace_period: \"10\"\n"),
        "docker-compose.yml: services.web.stop_grace_period: time: missing unit in duration \"10\""
    );
    assert_eq!(
        error("services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits:\n          memory: 1zb\n"),
        "docker-compose.yml: services.web.deploy.resources.limits.memory: invalid suffix: 'zb'"
    );
}

#[test]
fn healthcheck_forms() {
    let stack = load_yaml(
        "services:\n  a:\n    image: x\n    healthcheck:\n      test: curl -f http://localhost || exit 1\n  b:\n    image: x\n    healthcheck:\n      disable: true\n",
    )
    .unwrap();
    let test = |name: &str| {
        service(&stack, name)
            .task_template
            .container_spec
            .healthcheck
            .clone()
            .unwrap()
            .test
    };
    assert_eq!(
        test("app_a"),
        ["CMD-SHELL", "curl -f http://localhost || exit 1"]
    );
    assert_eq!(test("app_b"), ["NONE"]);
    assert_eq!(
        error("services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, \"true\"]\n      disable: true\n"),
        "docker-compose.yml: services.a.healthcheck: test and disable can't be set at the same time"
    );
}

/// `stop_signal` and `init` reach the spec (docker's ContainerSpec.StopSignal and Init,
/// the latter only when set) with `user` and `working_dir`; a later file overrides them.
#[test]
fn stop_signal_init_user_and_working_dir_reach_the_spec() {
    let base = "services:\n  a:\n    image: x\n    user: nobody\n    working_dir: /srv\n    stop_signal: SIGINT\n    init: true\n    stop_grace_period: 1m30s\n  b:\n    image: x\n";
    let stack = load_yaml(base).unwrap();
    let cs = &service(&stack, "app_a").task_template.container_spec;
    assert_eq!(
        (cs.stop_signal.as_str(), cs.user.as_str(), cs.dir.as_str()),
        ("SIGINT", "nobody", "/srv")
    );
    assert_eq!(cs.stop_grace_period, Some(90_000_000_000));
    assert_eq!(cs.init, Some(true));
    let b = &service(&stack, "app_b").task_template.container_spec;
    assert_eq!((b.stop_signal.as_str(), b.init), ("", None));
    let files = [
        ("docker-compose.yml".to_string(), base.to_string()),
        (
            "override.yml".to_string(),
            "services:\n  a:\n    stop_signal: SIGUSR1\n    init: false\n".to_string(),
        ),
    ];
    let stack = crate::load("app", &files, &no_env()).unwrap();
    let cs = &service(&stack, "app_a").task_template.container_spec;
    // A later `init: false` does not clear an earlier `true`: docker's mergo sets a bool only
    // from true.
    assert_eq!(
        (cs.stop_signal.as_str(), cs.user.as_str(), cs.init),
        ("SIGUSR1", "nobody", Some(true))
    );
    assert_eq!(
        error("services:\n  a:\n    image: x\n    stop_signal: 2\n"),
        "docker-compose.yml: services.a.stop_signal must be a string"
    );
}

#[test]
fn interpolation_with_defaults() {
    let yaml = "services:
  web:
    image: \"nginx:${TAG:-latest}\"
    environment:
      - GREETING=$GREETING
      - PRICE=$$5
    deploy:
      replicas: ${REPLICAS:-2}
";
    let stack = load_yaml_env(yaml, &env(&[("GREETING", "hello")])).unwrap();
    let web = &stack.services[0];
    assert_eq!(web.task_template.container_spec.image, "nginx:latest");
    assert_eq!(
        web.task_template.container_spec.env,
        ["GREETING=hello", "PRICE=$5"]
    );
    assert_eq!(web.mode.replicas(), Some(2));

    let stack = load_yaml_env(yaml, &env(&[("TAG", "1.25"), ("REPLICAS", "4")])).unwrap();
    let web = &stack.services[0];
    assert_eq!(web.task_template.container_spec.image, "nginx:1.25");
    assert_eq!(web.labels["com.docker.stack.image"], "nginx:1.25");
    assert_eq!(web.mode.replicas(), Some(4));

    assert_eq!(
        error("services:\n  web:\n    image: \"nginx:${TAG\"\n"),
        "docker-compose.yml: invalid interpolation format for services.web.image: \"nginx:${TAG\"; you may need to escape any $ with another $"
    );
    assert_eq!(
        error("services:\n  web:\n    image: \"${IMAGE:?set IMAGE}\"\n"),
        "docker-compose.yml: invalid interpolation format for services.web.image: \"required variable IMAGE is missing a value: set IMAGE\"; you may need to escape any $ with another $"
    );
}

#[test]
fn environment_forms_and_env_file() {
    let stack = load_yaml_env(
        "services:
  web:
    image: nginx
    env_file: example1.env
    environment:
      BAZ: from_compose
      NUM: 42
      FROM_CALLER:
      UNSET:
",
        &env(&[("FROM_CALLER", "caller")]),
    )
    .unwrap();
    assert_eq!(
        stack.services[0].task_template.container_spec.env,
        [
            "BAR=bar_from_env_file",
            "BAZ=from_compose",
            "FOO=foo_from_env_file",
            "FROM_CALLER=caller",
            "NUM=42",
            "UNSET",
        ]
    );
    let e = error("services:\n  web:\n    image: nginx\n    env_file: [missing.env]\n");
    assert!(
        e.starts_with("docker-compose.yml: services.web.env_file[0]: cannot read env file /")
            && e.contains("missing.env"),
        "{e}"
    );
}

/// `-c base.yml -c prod.yml`: the later file wins key by key.
#[test]
fn later_files_override_earlier_ones() {
    let base = "version: '3.8'
services:
  web:
    image: nginx:1.24
    environment: [A=1, B=2]
    ports: ['8080:80']
    deploy:
      replicas: 1
      placement:
        constraints: [node.role == worker]
      labels: [tier=front]
  db:
    image: postgres
";
    let prod = "version: '3.8'
services:
  web:
    environment: {B: 3}
    ports: ['8080:8000', '9090:90']
    deploy:
      replicas: 5
      placement:
        constraints: [node.labels.zone == a]
";
    let files = [
        ("base.yml".to_string(), base.to_string()),
        ("prod.yml".to_string(), prod.to_string()),
    ];
    let stack = load("app", &files, &no_env()).unwrap();
    assert_eq!(names(&stack), ["app_db", "app_web"]);
    let web = service(&stack, "app_web");
    assert_eq!(web.mode.replicas(), Some(5));
    assert_eq!(web.task_template.container_spec.image, "nginx:1.24");
    assert_eq!(web.task_template.container_spec.env, ["A=1", "B=3"]);
    assert_eq!(web.labels["tier"], "front");
    // Constraints append, as docker's merge does.
    assert_eq!(
        web.task_template.placement.as_ref().unwrap().constraints,
        ["node.role == worker", "node.labels.zone == a"]
    );
    // Ports merge by published port.
    let ports: Vec<(u16, Option<u16>)> = web
        .endpoint_spec
        .as_ref()
        .unwrap()
        .ports
        .iter()
        .map(|p| (p.target_port, p.published_port))
        .collect();
    assert_eq!(ports, [(8000, Some(8080)), (90, Some(9090))]);

    let e = load(
        "app",
        &[
            ("base.yml".to_string(), base.to_string()),
            (
                "other.yml".to_string(),
                "version: '3.9'\nservices: {}\n".to_string(),
            ),
        ],
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "other.yml: version mismatched between two composefiles : 3.8 and 3.9"
    );
    // An error found after merging names the file that last defined the service.
    let e = load(
        "app",
        &[
            ("base.yml".to_string(), base.to_string()),
            (
                "prod.yml".to_string(),
                "version: '3.8'\nservices:\n  web:\n    deploy: {mode: global}\n".to_string(),
            ),
        ],
        &no_env(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "prod.yml: services.web.deploy: replicas can only be used with replicated or replicated-job mode"
    );
}

#[test]
fn yaml_syntax_error_mentions_line() {
    let e = error("services:\n  web:\n    image: nginx\n   ports: [80]\n");
    assert!(e.starts_with("docker-compose.yml: yaml: "), "{e}");
    assert!(e.contains("line 4"), "{e}");
    let path = fixtures().join("docker-compose.yml");
    match load_yaml("services:\n  web: [\n") {
        Err(ComposeError::Syntax { file, line, .. }) => {
            assert_eq!(file, path.to_string_lossy());
            assert!(line.is_some());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn file_level_errors() {
    assert_eq!(
        error("- just\n- a list\n"),
        "docker-compose.yml: top-level object must be a mapping"
    );
    assert_eq!(
        error("version: '2.4'\nservices: {}\n"),
        "docker-compose.yml: unsupported Compose file version: 2.4"
    );
    assert_eq!(
        error("services:\n  web:\n    ports: [80]\n"),
        "docker-compose.yml: services.web: invalid image reference for service web: no image specified"
    );
    assert_eq!(
        error("services:\n  web:\n    image: Nginx\n"),
        "docker-compose.yml: services.web: invalid image reference for service web: invalid reference format: repository name (library/Nginx) must be lowercase"
    );
    // `version: 3.8` unquoted, and `version: "3"`, are fine.
    load_yaml("version: 3.8\nservices: {web: {image: nginx}}\n").unwrap();
    load_yaml("version: \"3\"\nservices: {web: {image: nginx}}\n").unwrap();
    let empty = load_yaml("services: {}\n").unwrap();
    assert!(empty.services.is_empty() && empty.networks.is_empty());
}

#[test]
fn networks_and_volumes_declarations() {
    let stack = load_yaml(
        "services:
  web:
    image: nginx
    networks:
      front:
        aliases: [www]
      outside:
    volumes:
      - type: volume
        source: data
        target: /data
        read_only: true
      - type: bind
        source: ./conf
        target: /etc/nginx/conf.d
  worker:
    image: busybox
    command: [\"sh\", \"-c\", \"sleep 1d\"]
    entrypoint: /bin/entry --flag
    volumes: [\"shared:/shared\", \"/scratch\"]
networks:
  front:
    driver: overlay
    attachable: true
    labels: {team: web}
    ipam:
      config:
        - subnet: 10.20.0.0/24
          gateway: 10.20.0.1
  outside:
    external: true
    name: host-net
  unused: {}
volumes:
  data:
    name: explicit-data
  shared:
    external: true
",
    )
    .unwrap();
    let nets: Vec<(&str, &str, bool)> = stack
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.key.as_str(), n.external))
        .collect();
    assert_eq!(
        nets,
        [
            ("app_default", "default", false),
            ("app_front", "front", false),
            ("host-net", "outside", true),
        ]
    );
    let front = &stack.networks[1];
    assert!(front.attachable);
    assert_eq!(front.subnet.as_deref(), Some("10.20.0.0/24"));
    assert_eq!(front.gateway.as_deref(), Some("10.20.0.1"));
    assert_eq!(front.labels["team"], "web");
    assert_eq!(front.labels["com.docker.stack.namespace"], "app");

    let web = service(&stack, "app_web");
    assert_eq!(
        web.task_template.networks,
        [
            NetworkAttachmentConfig {
                target: "app_front".into(),
                aliases: strings(&["www", "web"]),
            },
            NetworkAttachmentConfig {
                target: "host-net".into(),
                aliases: strings(&["web"]),
            },
        ]
    );
    let m = &web.task_template.container_spec.mounts;
    assert_eq!(
        (m[0].source.as_str(), m[0].read_only),
        ("explicit-data", true)
    );
    assert_eq!(
        m[1].source,
        fixtures().join("conf").to_string_lossy().as_ref()
    );
    let worker = service(&stack, "app_worker");
    let c = &worker.task_template.container_spec;
    assert_eq!(c.args, ["sh", "-c", "sleep 1d"]);
    assert_eq!(c.command, ["/bin/entry", "--flag"]);
    assert_eq!(c.mounts[0].source, "shared");
    assert_eq!(
        (c.mounts[1].source.as_str(), c.mounts[1].target.as_str()),
        ("", "/scratch")
    );
    let vols: Vec<(&str, bool)> = stack
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), v.external))
        .collect();
    assert_eq!(vols, [("explicit-data", false), ("shared", true)]);
}

#[test]
fn restart_key_is_a_fallback_policy() {
    let stack = load_yaml(
        "services:\n  a: {image: x, restart: always}\n  b: {image: x, restart: 'on-failure:3'}\n  c: {image: x, restart: 'no'}\n  d: {image: x, restart: always, deploy: {restart_policy: {condition: none}}}\n",
    )
    .unwrap();
    assert_eq!(stack.warnings, ["Ignoring unsupported options: restart"]);
    let policy = |name: &str| {
        service(&stack, name)
            .task_template
            .restart_policy
            .as_ref()
            .map(|p| (p.condition, p.max_attempts))
    };
    assert_eq!(policy("app_a"), Some((Some(RestartCondition::Any), None)));
    assert_eq!(
        policy("app_b"),
        Some((Some(RestartCondition::OnFailure), Some(3)))
    );
    // docker reads "no" as "no policy": swarm's default (any) applies.
    assert_eq!(policy("app_c"), None);
    assert_eq!(policy("app_d"), Some((Some(RestartCondition::None), None)));
    assert!(error("services:\n  a: {image: x, restart: sometimes}\n")
        .contains("invalid restart policy: unknown policy 'sometimes'"));
}

/// Malformed input is an error, never a panic.
#[test]
fn malformed_input_never_panics() {
    let inputs = [
        "",
        "~",
        "42",
        "services:",
        "services: 3",
        "services: {web: null}",
        "services: {web: []}",
        "services: {web: {image: nginx, deploy: []}}",
        "services: {web: {image: nginx, ports: [{}]}}",
        "services: {web: {image: nginx, ports: [[1]]}}",
        "services: {web: {image: nginx, ports: ['::::']}}",
        "services: {web: {image: nginx, ports: ['65536:1']}}",
        "services: {web: {image: nginx, ports: [-1]}}",
        "services: {web: {image: nginx, volumes: ['::']}}",
        "services: {web: {image: nginx, volumes: [':']}}",
        "services: {web: {image: nginx, volumes: [{target: /x}]}}",
        "services: {web: {image: nginx, volumes: [{type: bind, target: /x}]}}",
        "services: {web: {image: nginx, volumes: [{type: tmpfs, source: a, target: /x}]}}",
        "services: {web: {image: nginx, volumes: [{type: volume, target: /x, bind: {}}]}}",
        "services: {web: {image: nginx, command: 'a \"b'}}",
        "services: {web: {image: nginx, environment: {A: true}}}",
        "services: {web: {image: nginx, environment: 3}}",
        "services: {web: {image: nginx, labels: [1]}}",
        "services: {web: {image: nginx, networks: 3}}",
        "services: {web: {image: nginx, networks: {a: 3}}}",
        "services: {web: {image: nginx, deploy: {replicas: -1}}}",
        "services: {web: {image: nginx, deploy: {replicas: 1.5}}}",
        "services: {web: {image: nginx, deploy: {replicas: 99999999999999999999}}}",
        "services: {web: {image: nginx, deploy: {resources: {limits: {cpus: 'x'}}}}}",
        "services: {web: {image: nginx, deploy: {resources: {limits: {cpus: '-1'}}}}}",
        "services: {web: {image: nginx, deploy: {resources: {limits: {memory: ''}}}}}",
        "services: {web: {image: nginx, deploy: {resources: {limits: {memory: '1.5.5m'}}}}}",
        "services: {web: {image: nginx, deploy: {placement: {constraints: [1]}}}}",
        "services: {web: {image: nginx, deploy: {update_config: {order: sideways}}}}",
        "services: {web: {image: nginx, deploy: {endpoint_mode: round}}}",
        "services: {web: {image: nginx, healthcheck: {interval: 1}}}",
        "services: {web: {image: nginx, healthcheck: {retries: -2}}}",
        "services: {web: {image: nginx, stop_grace_period: '-'}}",
        "services: {web: {image: nginx, ulimits: {nofile: {soft: 1}}}}",
        "services: {web: {image: '${'}}",
        "services: {web: {image: '$'}}",
        "services: {'bad name': {image: nginx}}",
        "networks: {n: {external: {name: 3}}}",
        "networks: {n: {ipam: {config: [{subnet: 'x/99'}]}}}",
        "volumes: {v: {external: true, driver: local}}",
        "secrets: {s: null}",
        "version: [3]",
        "version: '3.99'",
        "{a: 1}: b",
        "services: {web: {image: nginx}}\n---\nservices: {}",
        "a: &a [*a]",
        "services: {web: {image: .nan}}",
        "services: {web: {image: nginx, deploy: {replicas: .inf}}}",
        "services: {web: {image: nginx, ports: [8080:80]}}\nvolumes: [a]",
        "\u{feff}services: {web: {image: nginx}}",
        "services: {web: {image: nginx, volumes: ['\u{e9}:/x']}}",
        "services: {web: {image: 'ng\u{e9}inx'}}",
    ];
    for input in inputs {
        let result = std::panic::catch_unwind(|| load_yaml(input));
        assert!(result.is_ok(), "panicked on {input:?}");
    }
    // A selection of those, with the message a user gets.
    assert_eq!(
        error("services: {web: {image: nginx, environment: {A: true}}}"),
        "docker-compose.yml: services.web.environment.A must be a string, number or null"
    );
    assert_eq!(
        error("services: {web: {image: nginx, deploy: {replicas: -1}}}"),
        "docker-compose.yml: services.web.deploy.replicas: -1 must not be negative"
    );
    assert_eq!(
        error("services: {web: {image: nginx, volumes: [{type: bind, target: /x}]}}"),
        "docker-compose.yml: services.web.volumes[0]: invalid mount config for type \"bind\": field Source must not be empty"
    );
    assert_eq!(
        error("volumes: {v: {external: true, driver: local}}"),
        "docker-compose.yml: volumes.v: conflicting parameters \"external\" and \"driver\" specified for volume \"v\""
    );
    assert_eq!(
        error("services: {web: {image: nginx, deploy: {update_config: {order: sideways}}}}"),
        "docker-compose.yml: services.web.deploy.update_config.order must be one of the following: \"start-first\", \"stop-first\""
    );
}

#[test]
fn no_files() {
    assert_eq!(
        load("app", &[], &no_env()).unwrap_err().to_string(),
        "specify a Compose file (with --compose-file)"
    );
}

/// `healthcheck.start_interval` (schema 3.12+) reaches the service as
/// ContainerSpec.Healthcheck.StartInterval in nanoseconds, as docker's convertHealthcheck
/// sends it; an override file replaces it; an older file version may not use it.
#[test]
fn healthcheck_start_interval() {
    let yaml = "services:
  web:
    image: nginx
    healthcheck:
      test: [\"CMD\", \"true\"]
      interval: 5m
      start_period: 30s
      start_interval: 1500ms
";
    let health = |stack: &Stack| {
        service(stack, "app_web")
            .task_template
            .container_spec
            .healthcheck
            .clone()
            .unwrap()
    };
    let stack = load_yaml(yaml).unwrap();
    let hc = health(&stack);
    assert_eq!(hc.start_interval, 1_500_000_000);
    assert_eq!(
        serde_json::to_value(&hc).unwrap(),
        serde_json::json!({
            "Test": ["CMD", "true"],
            "Interval": 300_000_000_000i64,
            "StartPeriod": 30_000_000_000i64,
            "StartInterval": 1_500_000_000i64,
        })
    );
    let stack = load_yaml(&format!("version: \"3.12\"\n{yaml}")).unwrap();
    assert_eq!(health(&stack).start_interval, 1_500_000_000);

    let path = fixtures().join("docker-compose.yml");
    let over = "services:\n  web:\n    healthcheck:\n      start_interval: 2s\n";
    let stack = load(
        "app",
        &[
            (path.to_string_lossy().into_owned(), yaml.to_string()),
            (path.to_string_lossy().into_owned(), over.to_string()),
        ],
        &no_env(),
    )
    .unwrap();
    let hc = health(&stack);
    assert_eq!(
        (hc.start_interval, hc.start_period),
        (2 * SECOND_NS, 30 * SECOND_NS)
    );

    assert_eq!(
        error(&format!("version: \"3.11\"\n{yaml}")),
        "docker-compose.yml: services.web.healthcheck Additional property start_interval is not allowed"
    );
    assert!(
        error(&yaml.replace("1500ms", "soon")).contains("invalid duration"),
        "{}",
        error(&yaml.replace("1500ms", "soon"))
    );
}

/// `extra_hosts` as a list (`host:ip`, `host=ip`, an IPv6 address in brackets) or a
/// mapping, `dns`/`dns_search` as a string, `ulimits` with a missing hard limit: as
/// docker's loader reads them; later files append lists and merge maps.
#[test]
fn container_options_load_as_docker_s() {
    let stack = load_yaml(
        "services:\n  web:\n    image: nginx\n    extra_hosts: [\"a:10.0.0.1\", \"b=10.0.0.2\", \"c:[::1]\", nosep]\n    dns: 10.0.0.53\n    dns_search: corp.example\n    sysctls: [net.core.somaxconn=1024]\n",
    )
    .unwrap();
    let c = &service(&stack, "app_web").task_template.container_spec;
    assert_eq!(c.hosts, ["10.0.0.1 a", "10.0.0.2 b", "::1 c"]);
    let dns = c.dns_config.as_ref().unwrap();
    assert_eq!(
        (dns.nameservers.clone(), dns.search.clone()),
        (
            vec!["10.0.0.53".to_string()],
            vec!["corp.example".to_string()]
        )
    );
    assert_eq!(c.sysctls["net.core.somaxconn"], "1024");
    assert_eq!(stack.warnings, Vec::<String>::new());
    let stack = load_yaml(
        "services:\n  web:\n    image: nginx\n    extra_hosts: {z: 10.0.0.9, a: 10.0.0.1}\n",
    )
    .unwrap();
    assert_eq!(
        service(&stack, "app_web")
            .task_template
            .container_spec
            .hosts,
        ["10.0.0.1 a", "10.0.0.9 z"]
    );
    let e =
        load_yaml("services:\n  web:\n    image: nginx\n    ulimits:\n      nofile: {soft: 1}\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("hard is required"), "{e}");
}
