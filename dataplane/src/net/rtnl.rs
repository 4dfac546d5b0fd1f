//! Thin helpers over rtnetlink: requests with explicit netlink flags, link lookups by name, and errors that say what was asked.

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use rtnetlink::{Handle, LinkUnspec};

/// A failed netlink request, with what it was meant to do.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct NetlinkError {
    what: String,
    #[source]
    source: rtnetlink::Error,
}

impl NetlinkError {
    pub(crate) fn new(what: impl Into<String>, source: rtnetlink::Error) -> Self {
        NetlinkError {
            what: what.into(),
            source,
        }
    }

    /// The kernel's errno (positive), if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match &self.source {
            rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
            _ => None,
        }
    }

    /// The kernel says the object is not there (ENOENT, ENODEV, ESRCH).
    pub(crate) fn is_missing(&self) -> bool {
        self.errno().is_some_and(|e| {
            [Errno::ENOENT, Errno::ENODEV, Errno::ESRCH].contains(&Errno::from_raw(e))
        })
    }

    pub(crate) fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EEXIST as i32)
    }
}

/// Sends one request with `flags` (plus REQUEST and ACK) and waits for the ack.
pub(crate) async fn request(
    handle: &Handle,
    message: RouteNetlinkMessage,
    flags: u16,
    what: impl FnOnce() -> String,
) -> Result<(), NetlinkError> {
    let mut req = NetlinkMessage::from(message);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut handle = handle.clone();
    let mut response = match handle.request(req) {
        Ok(response) => response,
        Err(e) => return Err(NetlinkError::new(what(), e)),
    };
    while let Some(msg) = response.next().await {
        if let NetlinkPayload::Error(err) = msg.payload {
            if err.code.is_some() {
                return Err(NetlinkError::new(
                    what(),
                    rtnetlink::Error::NetlinkError(err),
                ));
            }
        }
    }
    Ok(())
}

/// All links of the handle's namespace.
pub(crate) async fn links(handle: &Handle) -> Result<Vec<LinkMessage>, NetlinkError> {
    handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetlinkError::new("listing links", e))
}

/// The link called `name`, None when there is none.
pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, NetlinkError> {
    let result: Result<Vec<LinkMessage>, _> = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_collect()
        .await;
    match result {
        Ok(mut found) => Ok(found.pop()),
        Err(e) => {
            let e = NetlinkError::new(format!("looking up link {name}"), e);
            if e.is_missing() {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Deletes link `index`; one that is already gone is fine.
pub(crate) async fn del_link(handle: &Handle, index: u32, name: &str) -> Result<(), NetlinkError> {
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = NetlinkError::new(format!("deleting link {name}"), e);
            if e.is_missing() {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Deletes every link in link group `group` in one request (one RCU grace period
/// for all, where deleting one by one waits one per link).
pub(crate) async fn del_group(handle: &Handle, group: u32) -> Result<(), NetlinkError> {
    let message = LinkUnspec::new_with_index(0).link_group(group).build();
    handle
        .link()
        .del_with_message(message)
        .execute()
        .await
        .map_err(|e| NetlinkError::new(format!("deleting link group {group:#x}"), e))
}

pub(crate) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

pub(crate) fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(mtu) => Some(*mtu),
        _ => None,
    })
}

/// The index of the bridge (or other master) the link is enslaved to.
pub(crate) fn link_controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(index) => Some(*index),
        _ => None,
    })
}

pub(crate) fn link_kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind),
            _ => None,
        }),
        _ => None,
    })
}
