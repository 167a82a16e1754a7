#!/usr/bin/env bash
# Checks that every C file of the host, the plugins and the public header follows .clang-format,
# with the clang-format of Debian 12 (version 14): another version may lay out the same code
# differently. `tests/format-check.sh --fix` rewrites the files instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v clang-format >/dev/null 2>&1; then
    echo "format-check: clang-format is missing; install it with: apt-get install -y clang-format" >&2
    exit 1
fi
version=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [ "$version" != 14 ]; then
    echo "format-check: clang-format $version found; the layout is defined by version 14 (Debian 12)" >&2
    exit 1
fi

mapfile -t files < <(git ls-files 'core/*.[ch]' 'plugins/*.[ch]' 'include/*.h')
if [ "${1:-}" = --fix ]; then
    clang-format -i "${files[@]}"
    exit 0
fi
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "format-check: ${#bad[@]} file(s) do not follow .clang-format (tests/format-check.sh --fix):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "format-check: ${#files[@]} files follow .clang-format"
