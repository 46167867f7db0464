#!/usr/bin/env bash
# Tools some tests need from Debian: a headless Chromium (the page test) and nginx (several
# servers behind a load balancer). Install each that is missing when we can; otherwise say why,
# and its tests are skipped with that reason. Never fails the build.
install() {  # install COMMAND PACKAGE WHAT
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$3: no $1, and no root apt-get to install it: its tests will be skipped"
    return 0
  fi
  echo "$3: installing $2 (apt-get)"
  if ! { apt-get install -y -q "$2" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$2" >/dev/null 2>&1; }; }; then
    echo "$3: apt-get could not install $2: its tests will be skipped"
  fi
}
install chromium chromium "browser test"
# nginx's package starts a server on port 80 once installed; the tests run their own
PATH="$PATH:/usr/sbin" install nginx nginx "load-balancer test"
exit 0
