//! The task's user (`--user`, compose's `user:`): resolved in the host's passwd and group
//! files, then taken on by the task's process before exec, as runc's GetExecUser and
//! setupUser do for a container.

use std::path::Path;

use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// Who the task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (set, replacing the shim's, even when empty).
    pub sgids: Vec<u32>,
    pub home: String,
}

/// `user` (`name`, `uid`, `name:group`, `uid:gid`...) as the files of this host define it.
pub(crate) fn resolve(user: &str) -> Result<ExecUser, String> {
    let read = |path: &str| match std::fs::read_to_string(Path::new(path)) {
        Ok(text) => Ok(text),
        // A host without the file has no entries, as runc treats a missing file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("reading {path}: {e}")),
    };
    resolve_in(user, &read(PASSWD)?, &read(GROUP)?)
}

/// The task's user with its additional groups (runc's setupUser): `user` resolved (root
/// when empty, if groups are given; None, as before, when neither is), then each of
/// `groups` by name or number in the host's group file, added to the user's own.
pub(crate) fn resolve_task(user: &str, groups: &[String]) -> Result<Option<ExecUser>, String> {
    if user.is_empty() && groups.is_empty() {
        return Ok(None);
    }
    let group = match std::fs::read_to_string(Path::new(GROUP)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {GROUP}: {e}")),
    };
    let mut out = resolve(if user.is_empty() { "0" } else { user })?;
    out.sgids.extend(additional_groups(groups, &group)?);
    Ok(Some(out))
}

/// runc's GetAdditionalGroups: each group by name or number in the group file, a number
/// not in it as it is; duplicates once.
pub(crate) fn additional_groups(groups: &[String], group: &str) -> Result<Vec<u32>, String> {
    let mut out: Vec<u32> = Vec::new();
    for g in groups {
        let num: Option<u32> = g.parse().ok();
        let gid = group
            .lines()
            .filter_map(group_entry)
            .find(|e| e.name == g || Some(e.gid) == num)
            .map(|e| e.gid)
            .or(num)
            .ok_or_else(|| {
                format!("unable to find group {g}: no matching entries in group file")
            })?;
        if !out.contains(&gid) {
            out.push(gid);
        }
    }
    Ok(out)
}

/// runc's GetExecUser over the given passwd and group texts: a user not in the passwd
/// file may be given by number (group 0, home `/`), a group not in the group file too;
/// without an explicit group the user's primary group applies, and the groups that list
/// the user by name become its supplementary groups.
pub(crate) fn resolve_in(user: &str, passwd: &str, group: &str) -> Result<ExecUser, String> {
    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_num: Option<u32> = user_arg.parse().ok();
    let entry = passwd
        .lines()
        .filter_map(passwd_entry)
        .find(|e| e.name == user_arg || Some(e.uid) == user_num);
    let (name, mut out) = match (entry, user_num) {
        (Some(e), _) => (
            e.name.to_string(),
            ExecUser {
                uid: e.uid,
                gid: e.gid,
                sgids: Vec::new(),
                home: e.home.to_string(),
            },
        ),
        (None, Some(uid)) => (
            String::new(),
            ExecUser {
                uid,
                gid: 0,
                sgids: Vec::new(),
                home: "/".to_string(),
            },
        ),
        (None, None) => {
            return Err(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            ))
        }
    };
    let groups = group.lines().filter_map(group_entry);
    match group_arg {
        Some(g) => {
            let gid_num: Option<u32> = g.parse().ok();
            let found = groups
                .filter(|e| e.name == g || Some(e.gid) == gid_num)
                .map(|e| e.gid)
                .next();
            out.gid = match (found, gid_num) {
                (Some(gid), _) | (None, Some(gid)) => gid,
                (None, None) => {
                    return Err(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                }
            };
        }
        None if !name.is_empty() => {
            out.sgids = groups
                .filter(|e| e.members.split(',').any(|m| m == name))
                .map(|e| e.gid)
                .collect();
        }
        None => {}
    }
    Ok(out)
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// `name:password:uid:gid:gecos:home:shell`; comments and malformed lines are skipped.
fn passwd_entry(line: &str) -> Option<PasswdEntry<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let fields: Vec<&str> = line.split(':').collect();
    Some(PasswdEntry {
        name: fields.first()?,
        uid: fields.get(2)?.parse().ok()?,
        gid: fields.get(3)?.parse().ok()?,
        home: fields.get(5).copied().unwrap_or(""),
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// `name:password:gid:member,member...`.
fn group_entry(line: &str) -> Option<GroupEntry<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let fields: Vec<&str> = line.split(':').collect();
    Some(GroupEntry {
        name: fields.first()?,
        gid: fields.get(2)?.parse().ok()?,
        members: fields.get(3).copied().unwrap_or(""),
    })
}

/// Becomes `user`: supplementary groups, then group, then user (after setuid the
/// process could change neither). Runs in the task's process just before exec.
pub(crate) fn become_user(user: &ExecUser) -> Result<(), String> {
    let sgids: Vec<Gid> = user.sgids.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&sgids).map_err(|e| format!("setgroups: {e}"))?;
    setgid(Gid::from_raw(user.gid)).map_err(|e| format!("setgid {}: {e}", user.gid))?;
    setuid(Uid::from_raw(user.uid)).map_err(|e| format!("setuid {}: {e}", user.uid))?;
    Ok(())
}

/// `env` with `HOME` set to the user's home when it sets none (runc does the same).
pub(crate) fn with_home(mut env: Vec<String>, user: &ExecUser) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# comment\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwww:x:33:app,other\nstaff:x:50:other,app\n";

    fn user(uid: u32, gid: u32, sgids: &[u32], home: &str) -> ExecUser {
        ExecUser {
            uid,
            gid,
            sgids: sgids.to_vec(),
            home: home.into(),
        }
    }

    /// runc's GetAdditionalGroups: by name or number, a number not in the file as is,
    /// a name not in it refused, each gid once.
    #[test]
    fn additional_groups_resolve_as_runc_does() {
        let groups = |g: &[&str]| {
            additional_groups(&g.iter().map(|s| s.to_string()).collect::<Vec<_>>(), GROUP)
        };
        assert_eq!(
            groups(&["www", "50", "4242", "staff"]).unwrap(),
            [33, 50, 4242]
        );
        assert_eq!(
            groups(&["nope"]).unwrap_err(),
            "unable to find group nope: no matching entries in group file"
        );
    }

    #[test]
    fn names_numbers_and_groups_resolve_as_runc_does() {
        let r = |spec: &str| resolve_in(spec, PASSWD, GROUP);
        assert_eq!(r("nobody"), Ok(user(65534, 65534, &[], "/nonexistent")));
        assert_eq!(r("app"), Ok(user(1000, 1000, &[33, 50], "/home/app")));
        // By number: the passwd entry still gives group, home and memberships.
        assert_eq!(r("1000"), Ok(user(1000, 1000, &[33, 50], "/home/app")));
        // An explicit group replaces the primary one and drops the memberships.
        assert_eq!(r("app:www"), Ok(user(1000, 33, &[], "/home/app")));
        assert_eq!(r("app:4242"), Ok(user(1000, 4242, &[], "/home/app")));
        // Numbers nobody defined are taken as they are.
        assert_eq!(r("1234"), Ok(user(1234, 0, &[], "/")));
        assert_eq!(r("1234:5678"), Ok(user(1234, 5678, &[], "/")));
        assert_eq!(r("root"), Ok(user(0, 0, &[], "/root")));
        assert_eq!(
            r("nosuchuser"),
            Err("unable to find user nosuchuser: no matching entries in passwd file".into())
        );
        assert_eq!(
            r("app:nosuchgroup"),
            Err("unable to find group nosuchgroup: no matching entries in group file".into())
        );
    }

    #[test]
    fn home_is_added_only_when_unset() {
        let u = user(1, 1, &[], "/home/u");
        assert_eq!(
            with_home(vec!["A=1".into()], &u),
            ["A=1".to_string(), "HOME=/home/u".to_string()]
        );
        assert_eq!(
            with_home(vec!["HOME=/x".into()], &u),
            ["HOME=/x".to_string()]
        );
    }
}
