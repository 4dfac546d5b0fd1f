/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The data-plane liveness probes between nodes, on the wire (answered in
 * lb_probe.h, sent by shoald): UDP to LB_PROBE_PORT, a payload of LB_PROBE_LEN
 * bytes: the magic "SHOALPRB", a kind, an 8-byte nonce. The answer is the probe
 * with LB_PROBE_ANSWER as its kind. A wire format, not the maps' ABI: kept out
 * of shoal_lb.h, whose hash names the pin directory.
 */
#ifndef SHOAL_PROBE_WIRE_H
#define SHOAL_PROBE_WIRE_H

#define LB_PROBE_PORT 7946
#define LB_PROBE_LEN 17
#define LB_PROBE_KIND 2
#define LB_PROBE_ANSWER 3

#endif
