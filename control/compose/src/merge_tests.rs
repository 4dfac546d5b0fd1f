//! `-c base.yml -c override.yml`: docker-cli's own merge cases (cli/compose/loader/merge_test.go)
//! ported, with the results docker's merge.go and mergo give, seen through what Shoal deploys.

use std::collections::BTreeMap;

use shoal_spec::{Protocol, ServiceSpec};

use crate::{load, ComposeError, Stack};

fn two(base: &str, over: &str) -> Result<Stack, ComposeError> {
    two_env(base, over, &BTreeMap::new())
}

fn two_env(base: &str, over: &str, env: &BTreeMap<String, String>) -> Result<Stack, ComposeError> {
    load(
        "app",
        &[
            ("/srv/base.yml".to_string(), base.to_string()),
            ("/srv/override.yml".to_string(), over.to_string()),
        ],
        env,
    )
}

/// Service `foo` (image `foo`) with `base` and `over` as its extra keys, version 3.4.
fn foo(base: &str, over: &str) -> ServiceSpec {
    foo_with(base, over, "")
}

/// As `foo`, with top-level declarations appended to both files.
fn foo_with(base: &str, over: &str, decls: &str) -> ServiceSpec {
    let file =
        |keys: &str| format!("version: '3.4'\nservices:\n  foo:\n    image: foo\n{keys}{decls}");
    let stack = two(&file(base), &file(over)).unwrap();
    stack
        .services
        .into_iter()
        .find(|s| s.name == "app_foo")
        .expect("app_foo")
}

fn ports(svc: &ServiceSpec) -> Vec<(u16, Option<u16>, Protocol)> {
    svc.endpoint_spec
        .iter()
        .flat_map(|e| &e.ports)
        .map(|p| (p.target_port, p.published_port, p.protocol))
        .collect()
}

#[test]
fn version_mismatch_is_refused() {
    // TestLoadTwoDifferentVersion.
    let e = two("version: '3.1'\n", "version: '3.4'\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/override.yml: version mismatched between two composefiles : 3.1 and 3.4"
    );
    // No version and `3` are both 3.13 to docker.
    two("services: {}\n", "version: '3'\nservices: {}\n").unwrap();
}

#[test]
fn ports_merge_by_published_port() {
    // TestLoadMultipleServicePorts: no_override.
    let svc = foo("    ports: ['8080:80']\n", "");
    assert_eq!(ports(&svc), [(80, Some(8080), Protocol::Tcp)]);
    // override_different_published: both kept, sorted by published port.
    let svc = foo("    ports: ['8080:80']\n", "    ports: ['8081:80']\n");
    assert_eq!(
        ports(&svc),
        [
            (80, Some(8080), Protocol::Tcp),
            (80, Some(8081), Protocol::Tcp)
        ]
    );
    // override_same_published: the later entry wins.
    let svc = foo("    ports: ['8080:80']\n", "    ports: ['8080:81']\n");
    assert_eq!(ports(&svc), [(81, Some(8080), Protocol::Tcp)]);
    // TestLoadMultipleConfigs: a long-syntax port replaces the short one it shares 8080 with.
    let svc = foo(
        "    ports: ['9090:90', '8080:80']\n",
        "    ports: [{target: 81, published: 8080}]\n",
    );
    assert_eq!(
        ports(&svc),
        [
            (81, Some(8080), Protocol::Tcp),
            (90, Some(9090), Protocol::Tcp)
        ]
    );
}

/// Where docker's merge drops a port (docker/cli#2407, #6223: keyed by published port alone),
/// Shoal keeps it: tcp and udp on one published port, and unpublished ports.
#[test]
fn ports_docker_would_drop_are_kept() {
    let svc = foo(
        "    ports: ['443:443', '443:443/udp', '80']\n",
        "    ports: ['81']\n",
    );
    assert_eq!(
        ports(&svc),
        [
            (80, None, Protocol::Tcp),
            (81, None, Protocol::Tcp),
            (443, Some(443), Protocol::Tcp),
            (443, Some(443), Protocol::Udp),
        ]
    );
}

const OBJECTS: &str = "secrets:
  my_secret: {file: ./a}
  foo_secret: {file: ./a}
  bar_secret: {file: ./a}
  baz_secret: {file: ./a}
configs:
  my_secret: {file: ./a}
  foo_secret: {file: ./a}
  bar_secret: {file: ./a}
  baz_secret: {file: ./a}
";

fn secrets(svc: &ServiceSpec) -> Vec<(String, String)> {
    svc.task_template
        .container_spec
        .secrets
        .iter()
        .map(|s| {
            let target = s.file.as_ref().map(|f| f.name.clone()).unwrap_or_default();
            (s.secret_name.trim_start_matches("app_").to_string(), target)
        })
        .collect()
}

fn configs(svc: &ServiceSpec) -> Vec<(String, String)> {
    svc.task_template
        .container_spec
        .configs
        .iter()
        .map(|c| {
            let target = c.file.as_ref().map(|f| f.name.clone()).unwrap_or_default();
            (c.config_name.trim_start_matches("app_").to_string(), target)
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// TestLoadMultipleSecretsConfig and TestLoadMultipleConfigobjsConfig: by source, sorted.
#[test]
fn secrets_and_configs_merge_by_source() {
    for key in ["secrets", "configs"] {
        let get = |svc: &ServiceSpec| {
            if key == "secrets" {
                secrets(svc)
            } else {
                configs(svc)
            }
        };
        // no_override (a secret's default target is its source; a config's too).
        let svc = foo_with(&format!("    {key}: [my_secret]\n"), "", OBJECTS);
        assert_eq!(get(&svc), pairs(&[("my_secret", "my_secret")]));
        // override_simple: both, sorted by source.
        let svc = foo_with(
            &format!("    {key}: [foo_secret]\n"),
            &format!("    {key}: [bar_secret]\n"),
            OBJECTS,
        );
        assert_eq!(
            get(&svc),
            pairs(&[("bar_secret", "bar_secret"), ("foo_secret", "foo_secret")])
        );
        // override_same_source: bar_secret's later entry wins; baz_secret is added although
        // its target is the one bar_secret had.
        let svc = foo_with(
            &format!(
                "    {key}: [foo_secret, {{source: bar_secret, target: waw_secret}}]\n"
            ),
            &format!(
                "    {key}: [{{source: bar_secret, target: bof_secret}}, {{source: baz_secret, target: waw_secret}}]\n"
            ),
            OBJECTS,
        );
        assert_eq!(
            get(&svc),
            pairs(&[
                ("bar_secret", "bof_secret"),
                ("baz_secret", "waw_secret"),
                ("foo_secret", "foo_secret"),
            ])
        );
    }
}

fn ulimits(svc: &ServiceSpec) -> Vec<(String, i64, i64)> {
    let mut u: Vec<_> = svc
        .task_template
        .container_spec
        .ulimits
        .iter()
        .map(|u| (u.name.clone(), u.soft, u.hard))
        .collect();
    u.sort();
    u
}

/// TestLoadMultipleUlimits and TestMergeUlimitsConfig: a later entry replaces the whole
/// earlier one, whichever notation either uses.
#[test]
fn ulimits_merge_by_name() {
    let svc = foo("    ulimits: {nproc: 65535}\n", "");
    assert_eq!(ulimits(&svc), [("nproc".to_string(), 65535, 65535)]);
    let svc = foo(
        "    ulimits: {nproc: 65535}\n",
        "    ulimits: {nproc: 44444}\n",
    );
    assert_eq!(ulimits(&svc), [("nproc".to_string(), 44444, 44444)]);
    let svc = foo(
        "    ulimits: {nofile: {soft: 11111, hard: 99999}, nproc: 44444, core: 500}\n",
        "    ulimits: {nofile: 55555, nproc: {soft: 22222, hard: 33333}}\n",
    );
    assert_eq!(
        ulimits(&svc),
        [
            ("core".to_string(), 500, 500),
            ("nofile".to_string(), 55555, 55555),
            ("nproc".to_string(), 22222, 33333),
        ]
    );
}

const NETS: &str = "networks: {net1: {}, net2: {}, net3: {}}\n";

fn networks(svc: &ServiceSpec) -> Vec<(String, Vec<String>)> {
    svc.task_template
        .networks
        .iter()
        .map(|n| {
            (
                n.target.trim_start_matches("app_").to_string(),
                n.aliases.clone(),
            )
        })
        .collect()
}

fn aliases(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// TestLoadMultipleServiceNetworks and TestMergeServiceNetworkConfig. Every attachment also
/// gets the service's name as its last alias, as docker's convert adds it.
#[test]
fn service_networks_merge_by_name() {
    let svc = foo_with("    networks: [net1, net2]\n", "", NETS);
    assert_eq!(
        networks(&svc),
        [
            ("net1".to_string(), aliases(&["foo"])),
            ("net2".to_string(), aliases(&["foo"]))
        ]
    );
    let svc = foo_with(
        "    networks: [net1, net2]\n",
        "    networks: [net1, net3]\n",
        NETS,
    );
    assert_eq!(
        networks(&svc),
        [
            ("net1".to_string(), aliases(&["foo"])),
            ("net2".to_string(), aliases(&["foo"])),
            ("net3".to_string(), aliases(&["foo"]))
        ]
    );
    // override_with_aliases: the later aliases replace the earlier ones.
    let svc = foo_with(
        "    networks: {net1: {aliases: [alias1]}, net2: null}\n",
        "    networks: {net1: {aliases: [alias2, alias3]}, net3: {}}\n",
        NETS,
    );
    assert_eq!(
        networks(&svc),
        [
            ("net1".to_string(), aliases(&["alias2", "alias3", "foo"])),
            ("net2".to_string(), aliases(&["foo"])),
            ("net3".to_string(), aliases(&["foo"]))
        ]
    );
}

/// TestLoadMultipleConfigs: scalars override, label maps merge, `cap_add` appends, a
/// service only in the later file is added, `build` is ignored with docker's warning.
#[test]
fn services_merge_by_name() {
    let base = "version: '3.4'
services:
  foo:
    image: foo
    build: {context: ., dockerfile: bar.Dockerfile}
    ports: ['8080:80', '9090:90']
    labels: [foo=bar, keep=1]
    cap_add: [NET_ADMIN]
";
    let over = "version: '3.4'
services:
  foo:
    image: baz
    build: {dockerfile: foo.Dockerfile, args: [buildno=1]}
    ports: [{target: 81, published: 8080}]
    labels: {foo: baz}
    cap_add: [SYS_ADMIN]
  bar:
    image: bar
";
    let stack = two(base, over).unwrap();
    let names: Vec<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["app_bar", "app_foo"]);
    let svc = &stack.services[1];
    assert_eq!(svc.task_template.container_spec.image, "baz");
    let labels = &svc.task_template.container_spec.labels;
    assert_eq!(labels["foo"], "baz");
    assert_eq!(labels["keep"], "1");
    assert_eq!(
        svc.task_template.container_spec.capability_add,
        ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
    );
    assert_eq!(
        ports(svc),
        [
            (81, Some(8080), Protocol::Tcp),
            (90, Some(9090), Protocol::Tcp)
        ]
    );
    assert_eq!(stack.warnings, ["Ignoring unsupported options: build"]);
}

/// TestLoadMultipleNetworks (docker issue #972): a top-level entry is replaced whole, so the
/// earlier driver and subnet are gone once the later file makes the network external.
#[test]
fn top_level_entries_replace_whole() {
    let base = "version: '3.4'
services:
  foo: {image: baz, networks: [hostnet], volumes: ['data:/data']}
networks:
  hostnet:
    driver: overlay
    ipam: {driver: default, config: [{subnet: 10.0.0.0/20}]}
volumes:
  data: {labels: [a=1]}
";
    let over = "version: '3.4'
services: {}
networks:
  hostnet:
    external: true
    name: host
volumes:
  data: {labels: [b=2]}
";
    let stack = two(base, over).unwrap();
    let net = stack.networks.iter().find(|n| n.key == "hostnet").unwrap();
    assert_eq!(
        (net.name.as_str(), net.external, net.subnet.clone()),
        ("host", true, None)
    );
    let vol = &stack.volumes[0];
    assert_eq!(vol.labels.get("a"), None);
    assert_eq!(vol.labels.get("b").map(String::as_str), Some("2"));
}

/// TestLoadMultipleServiceCommands: a command is replaced, never appended; an empty one
/// leaves the earlier one.
#[test]
fn commands_are_replaced() {
    let svc = foo("    command: foo bar\n", "    command: foo baz\n");
    assert_eq!(svc.task_template.container_spec.args, ["foo", "baz"]);
    let svc = foo(
        "    command: foo bar\n    entrypoint: [/bin/sh, -c]\n",
        "    command: ''\n    entrypoint: [/init]\n",
    );
    assert_eq!(svc.task_template.container_spec.args, ["foo", "bar"]);
    assert_eq!(svc.task_template.container_spec.command, ["/init"]);
}

/// TestLoadMultipleServiceVolumes: by target, the later mount wins.
#[test]
fn volumes_merge_by_target() {
    let base = "version: '3.7'
services:
  foo:
    image: baz
    volumes:
      - {type: volume, source: sourceVolume, target: /var/app}
      - {type: volume, source: other, target: /b}
volumes: {sourceVolume: {}, other: {}}
";
    let over = "version: '3.7'
services:
  foo:
    image: baz
    volumes: [{type: bind, source: /local, target: /var/app}]
";
    let stack = two(base, over).unwrap();
    let mounts: Vec<(String, String, String)> = stack.services[0]
        .task_template
        .container_spec
        .mounts
        .iter()
        .map(|m| (m.kind.clone(), m.source.clone(), m.target.clone()))
        .collect();
    assert_eq!(
        mounts,
        [
            (
                "volume".to_string(),
                "app_other".to_string(),
                "/b".to_string()
            ),
            (
                "bind".to_string(),
                "/local".to_string(),
                "/var/app".to_string()
            ),
        ]
    );
    // The declared volume no service mounts any more is not created.
    let vols: Vec<&str> = stack.volumes.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(vols, ["other"]);
}

/// TestMergeServiceOverrideReplicasZero and ...NotNil (docker issue #3293).
#[test]
fn replicas_zero_overrides_and_unset_keeps() {
    let svc = foo("    deploy: {replicas: 3}\n", "    deploy: {replicas: 0}\n");
    assert_eq!(svc.mode.replicas(), Some(0));
    let svc = foo("    deploy: {replicas: 3}\n", "    deploy: {}\n");
    assert_eq!(svc.mode.replicas(), Some(3));
}

/// What mergo (WithOverride, WithAppendSlice) does to the fields docker has no transformer
/// for: an empty or zero value never overrides, a false never clears a true, lists append,
/// nested structs merge field by field.
#[test]
fn mergo_rules_for_the_other_fields() {
    let svc = foo(
        "    environment: [A=1, B=2, C=3, D]
    hostname: base
    init: true
    stop_grace_period: 20s
    dns: [10.0.0.1]
    extra_hosts: ['a:10.0.0.1']
    healthcheck: {test: [CMD, a], interval: 5s, retries: 3}
    deploy:
      placement: {constraints: [node.role == worker]}
      update_config: {parallelism: 2, delay: 10s}
      resources: {limits: {memory: 64M, cpus: '0.5'}}
      restart_policy: {condition: on-failure, max_attempts: 3}
",
        "    environment: {A: '', B: x, C: null, E: ''}
    hostname: ''
    init: false
    stop_grace_period: 0s
    dns: [10.0.0.2]
    extra_hosts: ['b:10.0.0.2']
    healthcheck: {test: [CMD, b], interval: 0s, retries: 0}
    deploy:
      placement: {constraints: [node.labels.zone == a]}
      update_config: {delay: 0s, order: start-first}
      resources: {limits: {cpus: '0.25'}}
      restart_policy: {max_attempts: 0}
",
    );
    let c = &svc.task_template.container_spec;
    // `A: ''` leaves A=1 (mergo sets a *string only from a non-empty one); a bare `C` (nil)
    // replaces it; E is new.
    assert_eq!(c.env, ["A=1", "B=x", "C", "D", "E="]);
    assert_eq!(c.hostname, "base");
    assert_eq!(c.init, Some(true));
    assert_eq!(c.stop_grace_period, Some(20 * shoal_spec::SECOND_NS));
    assert_eq!(
        c.dns_config.as_ref().unwrap().nameservers,
        ["10.0.0.1", "10.0.0.2"]
    );
    assert_eq!(c.hosts, ["10.0.0.1 a", "10.0.0.2 b"]);
    let hc = c.healthcheck.as_ref().unwrap();
    // `test` is a plain list to mergo: appended, as docker does.
    assert_eq!(hc.test, ["CMD", "a", "CMD", "b"]);
    assert_eq!(hc.interval, 5 * shoal_spec::SECOND_NS);
    assert_eq!(hc.retries, 0);
    assert_eq!(
        svc.task_template.placement.as_ref().unwrap().constraints,
        ["node.role == worker", "node.labels.zone == a"]
    );
    let update = svc.update_config.as_ref().unwrap();
    assert_eq!(update.parallelism, 2);
    assert_eq!(update.delay, 10 * shoal_spec::SECOND_NS);
    assert_eq!(update.order, shoal_spec::UpdateOrder::StartFirst);
    let limits = svc
        .task_template
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits.nano_cpus, 250_000_000);
    assert_eq!(limits.memory_bytes, 64 << 20);
    let restart = svc.task_template.restart_policy.as_ref().unwrap();
    assert_eq!(restart.max_attempts, Some(0));
    assert_eq!(
        restart.condition,
        Some(shoal_spec::RestartCondition::OnFailure)
    );
}

/// docker interpolates each file with the same environment, then merges: a variable that
/// comes out empty in the later file is an empty value, which overrides nothing.
#[test]
fn each_file_is_interpolated_before_the_merge() {
    let env: BTreeMap<String, String> = [("TAG", "1.25"), ("N", "4")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stack = two_env(
        "services:\n  web: {image: 'nginx:${TAG}', hostname: base}\n",
        "services:\n  web: {hostname: '${UNSET}', deploy: {replicas: '${N}'}}\n",
        &env,
    )
    .unwrap();
    let svc = &stack.services[0];
    assert_eq!(svc.task_template.container_spec.image, "nginx:1.25");
    assert_eq!(svc.task_template.container_spec.hostname, "base");
    assert_eq!(svc.mode.replicas(), Some(4));
    // An interpolation error names its own file.
    let e = two_env(
        "services:\n  web: {image: nginx}\n",
        "services:\n  web: {hostname: '${'}\n",
        &env,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/srv/override.yml: invalid interpolation format"),
        "{e}"
    );
}

/// Every file is parsed before any is loaded, as docker's loadConfigFiles: a later file's
/// YAML error comes before an earlier file's schema error. Each error names its file, and
/// the merged stack is checked whole.
#[test]
fn errors_name_their_file() {
    let e = two(
        "services:\n  web: {image: nginx, bogus: 1}\n",
        "services: [\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("/srv/override.yml: yaml: "),
        "{e}"
    );
    let e = two(
        "services:\n  web: {image: nginx, bogus: 1}\n",
        "services: {}\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/base.yml: services.web Additional property bogus is not allowed"
    );
    let e = two("services:\n  web: {image: nginx}\n", "- a\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/override.yml: top-level object must be a mapping"
    );
    let e = two("services:\n  web: {image: nginx}\n", "").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/srv/override.yml: top-level object must be a mapping"
    );
    let e = two(
        "services:\n  web: {image: nginx}\n",
        "services:\n  web: {mem_limit: 1g}\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/srv/override.yml: compose file contains unsupported options:"),
        "{e}"
    );
    // The merged service must still be whole: the network the later file names is declared
    // nowhere.
    let e = two(
        "services:\n  web: {image: nginx}\n",
        "services:\n  web: {networks: [back]}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("undefined network \"back\""), "{e}");
}
