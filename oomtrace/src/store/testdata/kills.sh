#!/bin/bash
# Fixture: real kill records from the current binary, in an oomtrace-test-* cgroup (64 MiB pod limit).
set -u
M=/sys/fs/cgroup/memory
UID_=3f2a6c1e-8b7d-4e0a-9c5b-1d2e3f405060
CID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
R=$M/oomtrace-test-fixture
POD=$R/kubepods/burstable/pod$UID_
mkdir -p $POD/$CID
echo $((64<<20)) > $POD/memory.limit_in_bytes
/work/wt/store/target/debug/oomtrace --format json --store /tmp/store-fix/fix.db -d 15 > /tmp/store-fix/out.jsonl 2>/tmp/store-fix/err.txt &
T=$!
sleep 4
for i in 1 2; do
  sh -c "echo \$\$ > $POD/$CID/tasks; exec python3 -c 'a=[]
while True: a.append(bytearray(8<<20))'" ; sleep 1
done
sh -c "echo \$\$ > $R/tasks; echo $((64<<20)) > $R/memory.limit_in_bytes; exec python3 -c 'a=[]
while True: a.append(bytearray(8<<20))'"
wait $T
for d in $POD/$CID $POD $R/kubepods/burstable $R/kubepods $R; do rmdir $d; done
