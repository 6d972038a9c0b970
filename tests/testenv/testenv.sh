#!/usr/bin/env bash
# A real Kubernetes API server for the integration tests: upstream's
# apiextensions-apiserver (CRDs and custom resources only) on etcd, built from
# Debian's Go source packages, plus a matching kubectl. No Docker, no cluster.
#
#   testenv.sh build              fetch, build and cache (fast when cached)
#   testenv.sh up [--watch-pid P] start etcd + API server; last stdout line: kubeconfig path
#   testenv.sh down [--keep] DIR  stop what `up` started (DIR: its state dir or kubeconfig)
#   testenv.sh restart-apiserver [--down-for S] DIR
#                                 kill -9 the API server, start it again on the same port
#   testenv.sh kubectl-path       print the path of the cached kubectl
#
# See README.md beside this file for the why of every step.
set -euo pipefail

readonly RECIPE=1 # bump when the way binaries are built changes, to invalidate caches
readonly ROOT_PKG=golang-k8s-apiextensions-apiserver-dev
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
readonly HERE SELF
readonly MAIN_GO="$HERE/apiserver/main.go"
readonly CACHE="${TESTENV_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/federation-controller/testenv}"
readonly MIRROR="${TESTENV_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly SUITE="${TESTENV_DEBIAN_SUITE:-sid}"
readonly READY_TIMEOUT="${TESTENV_READY_TIMEOUT:-60}"
readonly APT_DIR="$CACHE/apt"
readonly BUILDS="$CACHE/builds"
readonly WORK="$CACHE/work"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- host tools

need_host_tools() {
  local missing=() t
  for t in openssl dpkg-deb apt-get apt-cache flock sha256sum base64; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ " ${missing[*]} " == *" openssl "* && ${#missing[@]} -eq 1 && $EUID -eq 0 ]]; then
    log "installing openssl from the host's own apt sources"
    apt-get install -y -q --no-install-recommends openssl >&2 ||
      { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends openssl >&2; }
    return 0
  fi
  die "missing host tools: ${missing[*]} (on Debian: apt-get install openssl apt dpkg util-linux coreutils)"
}

# ------------------------------------------------------------- private apt
# A private apt configuration for Debian sid: own sources, lists, cache and an
# empty dpkg status. It only downloads; the host's apt and dpkg are untouched.

papt() { APT_CONFIG="$APT_DIR/apt.conf" "$@"; }

apt_setup() {
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -r $keyring ]] || die "$keyring is missing (package debian-archive-keyring)"
  mkdir -p "$APT_DIR"/{sources.list.d,apt.conf.d,preferences.d,lists/partial,cache/archives/partial}
  [[ -e $APT_DIR/status ]] || : >"$APT_DIR/status"
  echo "deb [signed-by=$keyring] $MIRROR $SUITE main" >"$APT_DIR/sources.list"
  cat >"$APT_DIR/apt.conf" <<EOF
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::Etc::Parts "$APT_DIR/apt.conf.d";
Dir::Etc::Preferences "$APT_DIR/preferences";
Dir::Etc::PreferencesParts "$APT_DIR/preferences.d";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR/cache";
APT::Architectures { "$(dpkg --print-architecture)"; };
Acquire::Languages "none";
// The archive reached here may be a frozen snapshot whose Release has passed
// Valid-Until; the signature is still checked.
Acquire::Check-Valid-Until "false";
EOF
  # Our cache dir is private to this user; apt's _apt sandbox user could not write there.
  ((EUID == 0)) && echo 'APT::Sandbox::User "root";' >>"$APT_DIR/apt.conf"
  return 0
}

apt_refresh() { papt apt-get -q -o Acquire::Retries=2 --error-on=any update >&2; }

# name=version of the candidate (newest sid) version of each package given.
candidate_versions() {
  papt apt-cache show --no-all-versions "$@" 2>/dev/null |
    awk '/^Package: /{p=$2} /^Version: /{print p "=" $2}' | sort -u
}

# Direct Depends (alternatives and providers of virtual packages included).
direct_depends() {
  papt apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" 2>/dev/null |
    awk '/^  \|?Depends: /{sub(/^  \|?Depends: /,""); gsub(/[<>]/,""); print; next}
         /^    [^ ]/{sub(/^ +/,""); print}' | sort -u
}

# The Go release sid builds its Go packages with: golang-go's dependency.
go_release_pkg() {
  direct_depends golang-go | { grep -E '^golang-1\.[0-9]+-go$' || true; } | sort -V | tail -n 1
}

# ------------------------------------------------------------------ builds
# builds/<key>/{bin/{testenv-apiserver,etcd,kubectl},manifest,main.sha256,recipe}
# manifest: name=version of every Debian package the build used. A build is
# reused while sid's candidate versions of all of them are unchanged.

main_sha() { sha256sum "$MAIN_GO" | cut -d' ' -f1; }

# Every build directory, newest first (`select_build` touches the one in use).
all_builds() {
  local b
  [[ -d $BUILDS ]] || return 0
  while read -r b; do
    [[ -n $b && $b != current ]] && echo "$BUILDS/$b"
  done < <(cd "$BUILDS" && ls -1t 2>/dev/null)
  return 0
}

# Cached builds of this main.go and recipe, newest first.
compatible_builds() {
  local sha b
  sha="$(main_sha)"
  for b in $(all_builds); do
    [[ -f $b/main.sha256 && -f $b/recipe && -f $b/manifest ]] || continue
    [[ $(<"$b/main.sha256") == "$sha" && $(<"$b/recipe") == "$RECIPE" ]] || continue
    [[ -x $b/bin/testenv-apiserver && -x $b/bin/etcd && -x $b/bin/kubectl ]] && echo "$b"
  done
  return 0
}

newest_compatible_build() { local l; l="$(compatible_builds)"; echo "${l%%$'\n'*}"; }

select_build() { ln -sfn "$(basename "$1")" "$BUILDS/current"; touch "$1"; }

# The build `up` and `kubectl-path` use, without touching the network when one
# fits: `current` if it was built from this main.go, else the newest that was,
# else a fresh `build`.
ensure_build() {
  local b list
  b="$(cd "$BUILDS/current" 2>/dev/null && pwd -P)" || b=""
  list="$(compatible_builds)"
  if [[ -n $b && $'\n'$list$'\n' == *$'\n'"$b"$'\n'* ]]; then echo "$b"; return 0; fi
  if [[ -n $list ]]; then echo "${list%%$'\n'*}"; return 0; fi
  cmd_build >&2
  newest_compatible_build
}

cmd_build() {
  need_host_tools
  mkdir -p "$CACHE" "$BUILDS"
  exec 9>"$CACHE/lock"
  flock -n 9 || { log "waiting for another testenv build to finish"; flock 9; }
  apt_setup
  rm -rf "$BUILDS"/.tmp.*
  local b fallback names
  fallback="$(newest_compatible_build)"
  if ! apt_refresh; then
    [[ -n $fallback ]] || die "cannot fetch the $SUITE index and no cached build exists"
    log "warning: cannot fetch the $SUITE index; using the newest cached build $fallback"
    select_build "$fallback"; exec 9>&-; return 0
  fi
  for b in $(compatible_builds); do
    mapfile -t names < <(cut -d= -f1 "$b/manifest")
    if diff -q <(candidate_versions "${names[@]}") <(sort "$b/manifest") >/dev/null; then
      log "cached build is current: $b"
      select_build "$b"; exec 9>&-; return 0
    fi
  done
  # A separate shell, so that `set -e` holds inside the build (bash ignores it
  # in functions called as a condition).
  if ! bash "$SELF" _build-from-sid; then
    [[ -n $fallback ]] || die "build failed; work files kept in $WORK"
    log "warning: build failed (work files kept in $WORK); using the newest cached build $fallback"
    select_build "$fallback"
  fi
  prune_builds
  exec 9>&-
}

prune_builds() {
  local keep="${TESTENV_KEEP_BUILDS:-3}" b cur n=0
  cur="$(cd "$BUILDS/current" 2>/dev/null && pwd -P)" || cur=""
  for b in $(all_builds); do
    n=$((n + 1))
    ((n > keep)) && [[ $b != "$cur" ]] && { log "removing old build $b"; rm -rf "$b"; }
  done
  return 0
}

deb_of() { # package -> its downloaded .deb
  local f
  for f in "$WORK/debs/${1}_"*.deb; do [[ -f $f ]] && { echo "$f"; return 0; }; done
  return 1
}

# Directory of a Go package -> Debian package, for the .go files unpacked so far.
used_packages() { # golist-output
  awk '$1=="D"{print $2}' "$1" | xargs -r realpath -m | sed "s|^$WORK/prefix||" | sort -u >"$WORK/useddirs"
  (cd "$WORK/lists" && for f in *.list; do
    awk -v p="${f%.list}" '/\.go$/{sub(/^\./,""); sub(/\/[^\/]*$/,""); print $0, p}' "$f"
  done) | sort -u >"$WORK/dirmap"
  awk 'NR==FNR{u[$1]=1;next} ($1 in u){print $2}' "$WORK/useddirs" "$WORK/dirmap" | sort -u
}

# Download (once) and unpack Debian packages into the build prefix, recording
# each package's file list.
fetch_and_unpack() {
  local p want=()
  for p in "$@"; do [[ -f $WORK/lists/$p.list ]] || want+=("$p"); done
  ((${#want[@]})) || return 0
  local get=()
  for p in "${want[@]}"; do deb_of "$p" >/dev/null || get+=("$p"); done
  if ((${#get[@]})); then
    (cd "$WORK/debs" && papt apt-get -q download "${get[@]}" >&2)
  fi
  for p in "${want[@]}"; do
    dpkg-deb -X "$(deb_of "$p")" "$WORK/prefix" >"$WORK/lists/$p.list.tmp"
    mv "$WORK/lists/$p.list.tmp" "$WORK/lists/$p.list"
  done
}

build_from_sid() {
  local start=$SECONDS gopkg gosrc gover goroot apiver closure pkgs
  gopkg="$(go_release_pkg)"
  [[ -n $gopkg ]] || { log "cannot find golang-1.x-go in $SUITE"; return 1; }
  gosrc="${gopkg%-go}-src"
  apiver="$(candidate_versions "$ROOT_PKG" | cut -d= -f2)"
  [[ -n $apiver ]] || { log "$ROOT_PKG is not in $SUITE"; return 1; }
  log "building from $SUITE: $ROOT_PKG $apiver with $gopkg (takes minutes the first time)"
  # Work files left by a failed build are reused only against the same index.
  local index
  index="$(cat "$APT_DIR"/lists/*Release 2>/dev/null | sha256sum | cut -c1-16)"
  [[ -f $WORK/index && $(<"$WORK/index") == "$index" ]] || rm -rf "$WORK"
  mkdir -p "$WORK"/{debs,lists,prefix,gocache}
  echo "$index" >"$WORK/index"

  # The Go package closure of the API server, as apt resolves it.
  papt apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$ROOT_PKG" 2>/dev/null |
    grep -E '^golang-[^ ]*-dev$' | sort -u >"$WORK/closure"
  mapfile -t closure <"$WORK/closure"
  papt apt-cache show --no-all-versions "${closure[@]}" 2>/dev/null |
    awk '/^Package: /{p=$2} /^Homepage: /{h=tolower($2); sub(/^[a-z]+:\/\//,"",h); sub(/\/+$/,"",h);
      sub(/\.git$/,"",h); print h, p}' >"$WORK/homepages"

  fetch_and_unpack "$gopkg" "$gosrc" etcd-server kubectl "$ROOT_PKG"
  gover="${gopkg#golang-}"
  goroot="$WORK/prefix/usr/lib/go-${gover%-go}"
  [[ -x $goroot/bin/go ]] || { log "no go binary in $goroot"; return 1; }

  local -a goenv=(env GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOENV=off
    GOFLAGS= GOWORK=off GOTELEMETRY=off "GOROOT=$goroot" "GOPATH=$WORK/prefix/usr/share/gocode"
    "GOCACHE=${TESTENV_GOCACHE:-$WORK/gocache}" "PATH=$goroot/bin:$PATH")

  # Fetch only the packages the build imports: start from the API server, list
  # its imports, and follow the Depends of just the packages that provide an
  # imported directory (or no Go code at all: transitional packages). About 80
  # of the ~300 packages of the closure.
  local round=0 missing used expand new
  while :; do
    round=$((round + 1))
    "${goenv[@]}" go list -e -deps \
      -f '{{if not .Standard}}{{if and .Error (not .Dir)}}M {{.ImportPath}}{{else}}D {{.Dir}}{{end}}{{end}}' \
      "$MAIN_GO" >"$WORK/golist" || return 1
    missing="$(awk '$1=="M"{print $2}' "$WORK/golist")"
    [[ -z $missing ]] && break
    used="$(used_packages "$WORK/golist")"
    expand="$(printf '%s\n' "$used" "$(cd "$WORK/lists" && for f in *.list; do
      grep -q '\.go$' "$f" || echo "${f%.list}"; done)" | { grep -E '^golang-.*-dev$' || true; } | sort -u)"
    new=""
    if [[ -n $expand ]]; then
      mapfile -t pkgs <<<"$expand"
      new="$(direct_depends "${pkgs[@]}" | { grep -xF -f "$WORK/closure" || true; } |
        while read -r p; do [[ -f $WORK/lists/$p.list ]] || echo "$p"; done)"
    fi
    if [[ -z $new ]]; then
      # Some packages import what their Debian package does not Depend on (it
      # comes in through a test dependency). Find the provider by its Homepage,
      # which for Go packages is the import path's repository, and failing that,
      # take the whole closure.
      new="$(awk 'NR==FNR{m[tolower($0)]=1;next}
        {for (i in m) if (i==$1 || index(i, $1 "/")==1) print $2}' <(echo "$missing") "$WORK/homepages" |
        sort -u | while read -r p; do [[ -f $WORK/lists/$p.list ]] || echo "$p"; done)"
      if [[ -n $new ]]; then
        log "round $round: $(tr '\n' ' ' <<<"$missing")not reached through Depends; found by Homepage: $(tr '\n' ' ' <<<"$new")"
      else
        new="$(while read -r p; do [[ -f $WORK/lists/$p.list ]] || echo "$p"; done <"$WORK/closure")"
        [[ -n $new ]] || { log "imports no package of the closure provides:"$'\n'"$missing"; return 1; }
        log "round $round: $(tr '\n' ' ' <<<"$missing")not found; fetching the whole closure"
      fi
    else
      log "round $round ($((SECONDS - start)) s): $(wc -w <<<"$missing") missing imports; fetching $(wc -w <<<"$new") packages"
    fi
    mapfile -t pkgs <<<"$new"
    fetch_and_unpack "${pkgs[@]}"
  done

  # The packages this build used: its manifest and cache key.
  used="$(printf '%s\n' "$(used_packages "$WORK/golist")" "$gopkg" "$gosrc" etcd-server kubectl | sort -u)"
  local p manifest=""
  for p in $used; do
    manifest+="$p=$(dpkg-deb -f "$(deb_of "$p")" Version)"$'\n'
  done

  # kubectl parses the server's version: give it the Kubernetes release the
  # 0.x library version stands for (0.36.4 -> v1.36.4).
  local upstream="${apiver#*:}"
  upstream="${upstream%%-*}"
  upstream="${upstream%%+*}"
  local major=1 minor
  minor="$(cut -d. -f2 <<<"$upstream")"
  local kver="v1.${upstream#0.}"
  log "compiling testenv-apiserver ($(wc -l <<<"$used") packages, version $kver)"
  local out="$BUILDS/.tmp.$$"
  rm -rf "$out"
  mkdir -p "$out/bin"
  "${goenv[@]}" go build -trimpath -o "$out/bin/testenv-apiserver" -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$kver \
    -X k8s.io/component-base/version.gitMajor=$major \
    -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean" "$MAIN_GO" >&2 || { rm -rf "$out"; return 1; }
  cp "$WORK/prefix/usr/bin/etcd" "$WORK/prefix/usr/bin/kubectl" "$out/bin/"
  printf '%s' "$manifest" | sort -u >"$out/manifest"
  main_sha >"$out/main.sha256"
  echo "$RECIPE" >"$out/recipe"
  local key
  key="$(cat "$out/manifest" "$out/main.sha256" "$out/recipe" | sha256sum | cut -c1-16)"
  rm -rf "${BUILDS:?}/$key"
  mv "$out" "$BUILDS/$key"
  select_build "$BUILDS/$key"
  rm -rf "$WORK"
  log "built $BUILDS/$key in $((SECONDS - start)) s"
}

# ------------------------------------------------------------------- up

# A port nothing listens on, below the kernel's ephemeral range (so no outgoing
# connection takes it meanwhile) and not handed out earlier in this run.
declare -a TAKEN_PORTS=()
free_port() { # variable-name
  local lo hi p
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
  hi=$((lo - 1))
  ((hi > 20000)) || hi=65000
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % (hi - 20000)))
    [[ " ${TAKEN_PORTS[*]} " == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    TAKEN_PORTS+=("$p")
    printf -v "$1" '%s' "$p"
    return 0
  done
  die "no free port found"
}

make_certs() {
  local d="$1/pki"
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=testenv-ca" -days 3650 -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    cat >ext.cnf <<'EOF'
[server]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
[client]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EOF
    # Only system:masters is authorized without a SubjectAccessReview (which
    # this server, having no authorization API, cannot answer).
    leaf() { # name subject section
      key "$1.key"
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile ext.cnf -extensions "$3" -out "$1.crt" 2>/dev/null
    }
    leaf server "/CN=testenv-apiserver" server
    leaf admin "/O=system:masters/CN=testenv-admin" client
    rm -f ./*.csr ca.srl
  ) || die "openssl failed to make the certificates"
}

write_kubeconfig() { # state port
  local d="$1/pki" b64='base64 -w0'
  cat >"$1/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority-data: $($b64 <"$d/ca.crt")
users:
- name: testenv-admin
  user:
    client-certificate-data: $($b64 <"$d/admin.crt")
    client-key-data: $($b64 <"$d/admin.key")
contexts:
- name: testenv
  context:
    cluster: testenv
    user: testenv-admin
    namespace: default
current-context: testenv
EOF
  chmod 600 "$1/kubeconfig"
}

# Start a program in the background with its output in a log file and no
# ETCD_* variables (etcd reads every one of them as a flag). Prints its PID.
spawn() { # logfile program args...
  local logf="$1"
  shift
  (
    while read -r v; do unset "$v"; done < <(compgen -e | grep '^ETCD_' || true)
    exec "$@" </dev/null >"$logf" 2>&1 9>&-
  ) &
  echo $!
}

# Running, and not a zombie (where nothing reaps orphans, kill -0 is not enough).
alive() { [[ -r /proc/$1/stat ]] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

etcd_healthy() { # port
  local reply
  reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && timeout 2 cat <&3) 2>/dev/null)" || return 1
  [[ $reply == *'"health":"true"'* ]]
}

fail_up() { # state message
  log "error: $2"
  local f
  for f in etcd.log apiserver.log; do
    [[ -f $1/$f ]] && { log "--- last lines of $1/$f"; tail -n 30 "$1/$f" >&2; }
  done
  stop_env "$1" keep
  log "state kept for debugging in $1"
  exit 1
}

# Starts the API server on etcd and waits until it answers. Returns 1 if it exited (the caller
# reads apiserver.log); gives up through fail_up when it does not get ready in time.
start_apiserver() { # state bin api-port etcd-port
  local state="$1" bin="$2" kc="$1/kubeconfig" pid deadline
  # --kubeconfig and the authn/authz kubeconfigs are mandatory; they point back
  # at this server. Admission plugins that need core APIs (namespaces,
  # webhooks, policies) are off, or every write waits 10 s and fails.
  pid="$(spawn "$state/apiserver.log" "$bin/testenv-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$3" \
    --tls-cert-file="$state/pki/server.crt" --tls-private-key-file="$state/pki/server.key" \
    --client-ca-file="$state/pki/ca.crt" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --authentication-skip-lookup \
    --disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy \
    --enable-priority-and-fairness=false \
    --etcd-servers="http://127.0.0.1:$4")"
  echo "$pid" >"$state/apiserver.pid"
  deadline=$((SECONDS + READY_TIMEOUT))
  while alive "$pid"; do
    # /readyz itself stays 500: the informers for Services and Namespaces
    # never sync, as this server has no core API.
    if KUBECACHEDIR="$state/kubecache" "$bin/kubectl" --kubeconfig "$kc" --request-timeout=2s \
      get --raw '/readyz?exclude=informer-sync' >/dev/null 2>&1; then
      return 0
    fi
    ((SECONDS < deadline)) || fail_up "$state" "API server not ready after ${READY_TIMEOUT}s"
    sleep 0.1
  done
  return 1
}

cmd_up() {
  local watch_pid=""
  while (($#)); do
    case "$1" in
      --watch-pid) watch_pid="${2:?--watch-pid needs a PID}"; shift 2 ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  local t0=$SECONDS build
  need_host_tools
  build="$(ensure_build)"
  [[ -n $build ]] || die "no usable build"
  local bin="$build/bin" state
  state="$(cd "$(mktemp -d "${TMPDIR:-/tmp}/fedctl-testenv.XXXXXX")" && pwd -P)"
  [[ $state != *[[:space:]]* ]] || die "state dir path contains whitespace: $state"
  make_certs "$state"
  mkdir -p "$state/kubecache"

  local attempt etcd_port peer_port api_port pid deadline
  for attempt in 1 2 3; do
    free_port etcd_port
    free_port peer_port
    free_port api_port
    rm -rf "$state/etcd-data"
    pid="$(spawn "$state/etcd.log" "$bin/etcd" --name testenv --data-dir "$state/etcd-data" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "testenv=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn)"
    echo "$pid" >"$state/etcd.pid"
    deadline=$((SECONDS + READY_TIMEOUT))
    until etcd_healthy "$etcd_port"; do
      alive "$pid" || break
      ((SECONDS < deadline)) || fail_up "$state" "etcd not healthy after ${READY_TIMEOUT}s"
      sleep 0.1
    done
    alive "$pid" && break
    grep -q 'address already in use' "$state/etcd.log" && ((attempt < 3)) && { log "etcd port taken, retrying"; continue; }
    fail_up "$state" "etcd exited"
  done

  local kc="$state/kubeconfig"
  for attempt in 1 2 3; do
    write_kubeconfig "$state" "$api_port"
    start_apiserver "$state" "$bin" "$api_port" "$etcd_port" && break
    if grep -q 'address already in use' "$state/apiserver.log" && ((attempt < 3)); then
      log "API server port taken, retrying"
      free_port api_port
      continue
    fi
    fail_up "$state" "API server exited"
  done

  local kubectl="$bin/kubectl"
  cat >"$state/env" <<EOF
KUBECONFIG=$kc
KUBECACHEDIR=$state/kubecache
TESTENV_KUBECONFIG=$kc
TESTENV_KUBECTL=$kubectl
TESTENV_SERVER=https://127.0.0.1:$api_port
TESTENV_STATE_DIR=$state
TESTENV_ETCD_URL=http://127.0.0.1:$etcd_port
TESTENV_ETCD_PID=$(<"$state/etcd.pid")
TESTENV_APISERVER_PID=$(<"$state/apiserver.pid")
TESTENV_SERVER_VERSION=$("$kubectl" --kubeconfig "$kc" get --raw /version 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
TESTENV_BUILD=$build
TESTENV_API_PORT=$api_port
TESTENV_ETCD_PORT=$etcd_port
EOF
  if [[ -n $watch_pid ]]; then
    # Stops the environment when the test process that asked for it is gone.
    (
      exec </dev/null >>"$state/watchdog.log" 2>&1 9>&-
      while kill -0 "$watch_pid" 2>/dev/null && [[ -d $state ]]; do sleep 1; done
      [[ -d $state ]] && exec bash "$SELF" down "$state"
    ) &
    echo $! >"$state/watchdog.pid"
    echo "TESTENV_WATCHDOG_PID=$!" >>"$state/env"
  fi
  log "ready in $((SECONDS - t0)) s at https://127.0.0.1:$api_port (state: $state; stop: $SELF down $state)"
  echo "$kc"
}

# ------------------------------------------------------------------ down

# Stop one process we started, only if its command line still names our state
# dir (so a reused PID is never hit).
stop_pid() { # pidfile state
  [[ -f $1 ]] || return 0
  local pid
  pid="$(<"$1")"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  if [[ -r /proc/$pid/cmdline && $(tr '\0' ' ' <"/proc/$pid/cmdline") == *"$2"* ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    local tries=100
    while alive "$pid" && ((tries-- > 0)); do sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$1"
}

stop_env() { # state keep|remove
  local state="$1" w
  if [[ -f $state/watchdog.pid ]]; then
    w="$(<"$state/watchdog.pid")"
    # The watchdog is a copy of this script's shell: its command line names this
    # script. When it is the one calling `down`, it is $$ and ends by itself.
    if [[ $w =~ ^[0-9]+$ && $w != "$$" && -r /proc/$w/cmdline &&
      $(tr '\0' ' ' <"/proc/$w/cmdline") == *"$SELF"* ]]; then
      kill -TERM "$w" 2>/dev/null || true
    fi
    rm -f "$state/watchdog.pid"
  fi
  stop_pid "$state/apiserver.pid" "$state"
  stop_pid "$state/etcd.pid" "$state"
  [[ $2 == keep ]] || rm -rf "$state"
}

cmd_down() {
  local keep=remove
  [[ ${1:-} == --keep ]] && { keep=keep; shift; }
  local state="${1:?usage: down [--keep] STATE_DIR|KUBECONFIG}"
  [[ -f $state ]] && state="$(dirname "$state")"
  [[ -d $state ]] || { log "no state dir $state (already down?)"; return 0; }
  state="$(cd "$state" && pwd -P)"
  [[ -f $state/etcd.pid || -f $state/apiserver.pid || -f $state/kubeconfig ]] ||
    die "$state is not a testenv state dir"
  stop_env "$state" "$keep"
  log "stopped $state"
}

# Kills the API server with SIGKILL (etcd keeps running, its data intact) and, after an optional
# pause, starts it again on the same port: what a crash of kube-apiserver looks like to clients.
cmd_restart_apiserver() {
  local down_for=0
  [[ ${1:-} == --down-for ]] && { down_for="${2:?--down-for needs seconds}"; shift 2; }
  local state="${1:?usage: restart-apiserver [--down-for SECONDS] STATE_DIR|KUBECONFIG}"
  [[ -f $state ]] && state="$(dirname "$state")"
  [[ -f $state/env ]] || die "$state is not a running testenv state dir"
  local api_port etcd_port build pid
  api_port="$(sed -n 's/^TESTENV_API_PORT=//p' "$state/env")"
  etcd_port="$(sed -n 's/^TESTENV_ETCD_PORT=//p' "$state/env")"
  build="$(sed -n 's/^TESTENV_BUILD=//p' "$state/env")"
  [[ -n $api_port && -n $etcd_port && -x $build/bin/testenv-apiserver ]] || die "$state/env lacks the ports or the build"
  pid="$(<"$state/apiserver.pid")"
  if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.05; done
  fi
  sleep "$down_for"
  start_apiserver "$state" "$build/bin" "$api_port" "$etcd_port" || fail_up "$state" "API server exited after a restart"
  sed -i "s/^TESTENV_APISERVER_PID=.*/TESTENV_APISERVER_PID=$(<"$state/apiserver.pid")/" "$state/env"
  log "API server restarted at https://127.0.0.1:$api_port"
}

cmd_kubectl_path() {
  need_host_tools
  local build
  build="$(ensure_build)"
  [[ -n $build ]] || die "no usable build"
  echo "$build/bin/kubectl"
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
  kubectl-path) shift; cmd_kubectl_path "$@" ;;
  _build-from-sid) build_from_sid ;;
  *) sed -n '2,13p' "$SELF" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
