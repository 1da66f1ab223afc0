"""
``make bench``: sbc side by side with SIPp's own ceiling, Kamailio (with and without topoh) and
Sippy B2BUA, measured on this machine in one run (issue 6); and, media anchored, sbc beside Kamailio +
topoh + rtpengine (issue 19).

Each module has one job:

  - `bench.plan`: how long and how hard each measurement runs (quick and full);
  - `bench.install`: installs the anchors (SIPp, Kamailio, rtpengine, Sippy, PyPy) when missing;
  - `bench.procfs`: CPU time and memory of a process tree, from /proc;
  - `bench.blast`: fast UDP senders and a counting receiver (the flood, the RTP);
  - `bench.sipp`: one SIPp load (a caller and a callee), and what SIPp counted;
  - `bench.systems`: the systems under test, each a child process on loopback;
  - `bench.rtpengine`: Debian's rtpengine daemon in userspace, on loopback;
  - `bench.anchored`: the anchored-media rows (sbc with its relay or rtpengine, Kamailio + topoh +
    rtpengine), whose calls carry RTP (issue 19);
  - `bench.ramp`: the rate ramp that finds the highest rate with no failed call;
  - `bench.suite`: the measurements of one system (ramp, CPU, latency, memory);
  - `bench.gate`: sbc's whitelist gate under a flood from a stranger;
  - `bench.rtp`: RTP through sbc's relay and through rtpengine;
  - `bench.report`: the table (stdout, Markdown, JSON) and the machine it ran on.
"""
