#!/usr/bin/env python3
"""CPU used by others while one iperf3 run measures.
  fpcpu.py snap FILE                     record /proc/stat and the kernel threads' CPU ticks
  fpcpu.py diff FILE HOST_PCT REMOTE_PCT print foreign% = share of all CPUs busy over the interval
      that is neither the two iperf3 processes (their cpu_utilization_percent from iperf3 -J,
      which includes the softirq work done in their context, charged to their stime) nor kernel
      threads (ksoftirqd, kworkers), followed by the machine's busy% and user+nice%."""
import json, os, sys, time
CLK = os.sysconf("SC_CLK_TCK"); NCPU = os.cpu_count()

def kthreads():
    t = 0
    for p in os.listdir("/proc"):
        if not p.isdigit(): continue
        try:
            with open("/proc/%s/stat" % p) as f: s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            if int(fields[6]) & 0x00200000:  # PF_KTHREAD
                t += int(fields[11]) + int(fields[12])
        except (OSError, ValueError): pass
    return t

def snap():
    with open("/proc/stat") as f: cpu = [int(x) for x in f.readline().split()[1:]]
    return {"t": time.time(), "k": kthreads(), "cpu": cpu}

if sys.argv[1] == "snap":
    json.dump(snap(), open(sys.argv[2], "w"))
else:
    a = json.load(open(sys.argv[2])); b = snap()
    d = [y - x for x, y in zip(a["cpu"], b["cpu"])]
    tot = sum(d[:8]) or 1
    busy = tot - d[3] - d[4]
    ours = (float(sys.argv[3]) + float(sys.argv[4])) / 100.0 * (b["t"] - a["t"]) * CLK + (b["k"] - a["k"])
    foreign = max(0.0, busy - ours)
    print("%.0f %.0f %.0f" % (100.0 * foreign / tot, 100.0 * busy / tot, 100.0 * (d[0] + d[1]) / tot))
