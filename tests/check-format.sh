#!/bin/sh
# Every C file follows .clang-format. Skipped (77) only where clang-format is
# not installed; scripts/check installs it, so CI always runs it.
command -v clang-format >/dev/null 2>&1 || { echo "clang-format not installed: skipped"; exit 77; }
cd "${top_srcdir:-.}" || exit 1
bad=0
for f in $(find src include tests bench examples -name '*.[ch]' 2>/dev/null | sort); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f (run: clang-format -i $f)"
        bad=1
    fi
done
[ $bad -eq 0 ] && echo "check-format: all files formatted"
exit $bad
