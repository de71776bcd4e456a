#!/usr/bin/env bash
# tools/demo.sh - `ninja demo`: migrate the bundled sample PSTs into a Maildir
# under build/demo/ and print the report. Run it twice: the second run is a
# delta pass that moves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf build/demo
echo "== mailferry run jobs/demo.ini"
rc=0
build/mailferry run jobs/demo.ini --no-progress || rc=$?
echo
echo "== mailferry status jobs/demo.ini"
build/mailferry status jobs/demo.ini
echo
echo "== mailferry report jobs/demo.ini --format csv"
build/mailferry report jobs/demo.ini --format csv
echo
echo "== the Maildirs written (build/demo/maildir):"
find build/demo/maildir -path '*/cur/*' -type f | sed 's|/cur/.*||' | sort | uniq -c
echo
echo "(exit code of the run: $rc; run 'ninja demo' again for a fresh start,"
echo " or 'build/mailferry run jobs/demo.ini' to see a delta pass move nothing)"
exit $rc
