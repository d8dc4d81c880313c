#!/bin/sh
# Installs strider from a release: downloads the archive for this machine, checks it against the
# release's SHA256SUMS, unpacks it under PREFIX/lib/strider and links PREFIX/bin/strider.
#
#   sh install.sh [--prefix DIR] [--base-url URL] [--platform P]
#   curl -fsSL URL/install.sh | sh -s -- --base-url URL
#
# --base-url (STRIDER_BASE_URL) is where the release's files are: an http(s):// or file:// URL,
# or a folder. Run from a release folder (dist/), it defaults to that folder.
# --prefix (STRIDER_PREFIX) defaults to /usr/local as root, else ~/.local.
# --platform defaults to this machine's: linux-x64, linux-arm64, darwin-x64 or darwin-arm64.
set -eu

die() {
  echo "install.sh: error: $*" >&2
  exit 1
}

if [ "$(id -u)" = 0 ]; then prefix=${STRIDER_PREFIX:-/usr/local}; else prefix=${STRIDER_PREFIX:-$HOME/.local}; fi
base=${STRIDER_BASE_URL:-}
platform=
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
    --base-url) [ $# -ge 2 ] || die "--base-url needs a URL"; base=$2; shift 2 ;;
    --platform) [ $# -ge 2 ] || die "--platform needs a value"; platform=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

if [ -z "$base" ]; then
  here=$(CDPATH= cd -- "$(dirname -- "$0")" 2>/dev/null && pwd -P) || here=
  if [ -n "$here" ] && [ -f "$here/SHA256SUMS" ]; then
    base=$here
  else
    die "give --base-url URL: where the release's files (SHA256SUMS and the archives) are"
  fi
fi

if [ -z "$platform" ]; then
  case $(uname -s) in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "no archive for $(uname -s) here; on Windows unpack strider-windows-x64.zip by hand" ;;
  esac
  case $(uname -m) in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no archive for the $(uname -m) processor" ;;
  esac
  platform=$os-$arch
fi
archive=strider-$platform.tar.gz

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Copies $base/$1 to $2.
fetch() {
  case $base in
    http://* | https://*)
      if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 -o "$2" "$base/$1" || die "cannot download $base/$1"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$base/$1" || die "cannot download $base/$1"
      else
        die "need curl or wget to download $base/$1"
      fi
      ;;
    file://*) cp "${base#file://}/$1" "$2" || die "cannot read ${base#file://}/$1" ;;
    *) cp "$base/$1" "$2" || die "cannot read $base/$1" ;;
  esac
}

fetch SHA256SUMS "$tmp/SHA256SUMS"
expected=$(awk -v name="$archive" '$2 == name { print $1 }' "$tmp/SHA256SUMS")
[ -n "$expected" ] || die "$base/SHA256SUMS lists no $archive"
fetch "$archive" "$tmp/$archive"
if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$tmp/$archive" | awk '{ print $1 }')
elif command -v shasum >/dev/null 2>&1; then
  actual=$(shasum -a 256 "$tmp/$archive" | awk '{ print $1 }')
else
  die "need sha256sum or shasum to verify $archive"
fi
[ "$actual" = "$expected" ] ||
  die "$archive has SHA-256 $actual but SHA256SUMS says $expected: not installed (download again)"

mkdir -p "$tmp/unpacked"
tar -xzf "$tmp/$archive" -C "$tmp/unpacked"
folder=$(ls "$tmp/unpacked")
case $folder in
  strider-*-"$platform") ;;
  *) die "$archive does not hold one strider-VERSION-$platform folder" ;;
esac
[ -x "$tmp/unpacked/$folder/strider" ] || die "$archive has no strider program"

mkdir -p "$prefix/lib/strider" "$prefix/bin"
rm -rf "$prefix/lib/strider/$folder.new"
mv "$tmp/unpacked/$folder" "$prefix/lib/strider/$folder.new"
rm -rf "$prefix/lib/strider/$folder"
mv "$prefix/lib/strider/$folder.new" "$prefix/lib/strider/$folder"
ln -sf "../lib/strider/$folder/strider" "$prefix/bin/strider.new"
mv -f "$prefix/bin/strider.new" "$prefix/bin/strider"

echo "installed $("$prefix/bin/strider" --version) into $prefix/lib/strider/$folder"
case :$PATH: in
  *:"$prefix/bin":*) ;;
  *) echo "add $prefix/bin to PATH to run strider" ;;
esac
