#!/usr/bin/env bash
# The native layer under AddressSanitizer + UndefinedBehaviorSanitizer: builds the addon with
# -fsanitize=address,undefined, runs the root-free tests (encoders, decoders, decoder fuzzing) and
# the protocol namespace tests (namespaces, rtnetlink, nf_tables, bridge mode; not the ones that
# start a second node process, which would load the sanitized addon without the runtimes) with the sanitizer
# runtimes preloaded into node, then rebuilds the normal addon. Any out-of-bounds access or UB
# aborts the run. Inside the test sandbox like every test (root).
#   bash scripts/sanitize.sh            (about 3 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
ASAN=$(g++ -print-file-name=libasan.so)
UBSAN=$(g++ -print-file-name=libubsan.so)
[ -e "$ASAN" ] && [ -e "$UBSAN" ] || { echo "sanitize: libasan/libubsan not found (apt-get install g++)"; exit 1; }
CXXFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  LDFLAGS="-fsanitize=address,undefined" node scripts/build-native.js >/dev/null || { echo "sanitize: build failed"; exit 1; }
# detect_leaks=0: node itself is not built for LeakSanitizer; memory growth is covered by the soak.
# The runtimes are preloaded into the sandboxed node only (scripts/sandbox.js), not into the ip/nft
# processes the tests run to check the kernel (ASan finds a strncpy overlap in iproute2 6.1's
# print_route, which is not ours).
NETMODES_ASAN_PRELOAD="$ASAN $UBSAN" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:verify_asan_link_order=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  node test/run.js 10. 20. 21. 22. 30. 31. 32. 33. 50. 51. 52. unit/
status=$?
node scripts/build-native.js >/dev/null   # back to the normal build
exit $status
