#!/usr/bin/env bash
# The benchmark of issue #6: this module against OpenSC's module on the same virtual My Number
# Card, through the real pcscd, at 0 ms and 25 ms simulated latency per APDU.
#
#   bench/run.sh            # ≈ 5 minutes; prints the markdown results and writes them into
#                           # docs/performance.md between the bench markers
#
# Environment (all optional):
#   BENCH_RUNS_0=7 BENCH_RUNS_25=3   runs per flow and module at 0 ms / 25 ms (medians)
#   BENCH_LATENCIES="0 25"           the per-APDU latencies, in ms
#   BENCH_SIGNATURES=100             signatures in the "one session" flow
#   BENCH_SIGNATURES_SIG=10          the same with the signature key (password per signature)
#   BENCH_INIT_RUNS=11               processes for the load + C_Initialize timing
#   BENCH_CALLGRIND=1                0 skips the valgrind/callgrind instruction counts
#   BENCH_NO_DOC=1                   do not touch docs/performance.md (stdout only)
#   BENCH_ALLOW_OTHER_CARDS=1        run even if another reader holds a card (its APDUs then
#                                    add to the wall times of the listing flows)
#   BENCH_PORT=35964                 the vpcd port of the card (35963 = "Virtual PCD 00 00")
#   OPENSC_MODULE                    default /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
#   CARGO_TARGET_DIR                 where the release build is (default ./target)
#
# Needs pcscd with vsmartcard-vpcd, opensc (pkcs11-tool), openssl; valgrind for the
# instruction counts (Debian packages: scripts/deps/core.txt and scripts/deps/bench.txt).
# Uses the second vpcd reader ("Virtual PCD 00 01", port 35964) and also holds the first
# reader's port lock (35963, the test harness's) so that no test card sits in the other reader
# while the listing flows are timed. Every process it starts is stopped on exit.
set -Eeuo pipefail
trap 'echo "bench: error: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS_0=${BENCH_RUNS_0:-7}
RUNS_25=${BENCH_RUNS_25:-3}
LATENCIES=${BENCH_LATENCIES:-0 25}
NSIG=${BENCH_SIGNATURES:-100}
NSIG_SIG=${BENCH_SIGNATURES_SIG:-10}
INIT_RUNS=${BENCH_INIT_RUNS:-11}
CALLGRIND=${BENCH_CALLGRIND:-1}
OPENSC=${OPENSC_MODULE:-/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so}
PORT=${BENCH_PORT:-35964}
READER="Virtual PCD 00 0$((PORT - 35963))"
OTHER_PORT=$((35963 + 35964 - PORT))
AUTH_PIN=1234
SIGN_PIN=JPKITEST1
WRONG_PIN=9999
TMP=${TMPDIR:-/tmp}
T_START=$EPOCHREALTIME

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

for cmd in pkcs11-tool openssl cargo awk; do
  command -v "$cmd" >/dev/null || die "$cmd not found (Debian packages: scripts/deps/core.txt)"
done
[ -f "$OPENSC" ] || die "$OPENSC not found (Debian package opensc)"
if [ "$CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
  log "valgrind not found (Debian package valgrind): no instruction counts"
  CALLGRIND=0
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building (release) in $CARGO_TARGET_DIR"
cargo build --release --quiet --lib --bins --example p11bench
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', with local changes')"
REL=$CARGO_TARGET_DIR/release
OURS=$REL/libjpki_pkcs11.so
JPKI=$REL/jpki
P11B=$REL/examples/p11bench

WORK=$(mktemp -d "$TMP/jpki-bench.XXXXXX")
CARD_DIR=$WORK/card
LOG=$WORK/apdu.log
RES=$WORK/results.tsv # latency module flow run ms apdus
MSG=$WORK/msg.txt
printf 'a document signed in the benchmark\n' >"$MSG"
card_pid=""
pcscd_started=""
locks=()

cleanup() {
  set +e
  if [ -n "$card_pid" ]; then
    kill "$card_pid" 2>/dev/null
    wait "$card_pid" 2>/dev/null
    "$P11B" wait --reader "$READER" --present 0 --timeout-ms 10000 2>/dev/null
  fi
  local l
  for l in "${locks[@]}"; do
    # Only a lock this script holds (its pid file names this shell).
    [ "$(cat "$l/pid" 2>/dev/null)" = "$$" ] && rm -rf "$l"
  done
  [ "$pcscd_started" = started ] && scripts/pcscd.sh stop
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated by SIGTERM"; exit 143' TERM
trap 'log "SIGHUP"; exit 129' HUP

# The test harness's cross-process port lock (tests/common/mod.rs, PortLock): a directory
# $TMPDIR/jpki-vcard-port-<port>.lock holding the owner's pid; a lock whose owner is gone (or
# that has no pid after 5 s) is taken over.
lock_port() {
  local dir=$TMP/jpki-vcard-port-$1.lock start=$SECONDS owner said=-30
  while ! mkdir "$dir" 2>/dev/null; do
    owner=$(cat "$dir/pid" 2>/dev/null || true)
    if { [ -n "$owner" ] && [ ! -d "/proc/$owner" ]; } ||
      { [ -z "$owner" ] && [ $(($(date +%s) - $(stat -c %Y "$dir" 2>/dev/null || date +%s))) -gt 5 ]; }; then
      rm -rf "$dir"
      continue
    fi
    [ $((SECONDS - start)) -lt 600 ] || die "port $1 stayed locked by pid $owner ($dir)"
    if [ $((SECONDS - said)) -ge 30 ]; then
      log "waiting for port $1 (locked by pid $owner)"
      said=$SECONDS
    fi
    sleep 0.2
  done
  echo $$ >"$dir/pid"
  locks+=("$dir")
}

pcscd_started=$(scripts/pcscd.sh start)

log "taking the lock of port $PORT ($READER)"
lock_port $PORT
"$P11B" wait --reader "$READER" --present 0 --timeout-ms 600000 ||
  die "$READER holds a card not started by a test (pgrep -a jpki)"
log "taking the lock of port $OTHER_PORT (keeps test cards out of the other reader)"
lock_port $OTHER_PORT
others() { "$P11B" others --reader "$READER"; }
if [ -n "$(others)" ] && [ "${BENCH_ALLOW_OTHER_CARDS:-0}" != 1 ]; then
  log "waiting (up to 10 min) until no other reader holds a card: $(others | tr '\n' ' ')"
  for _ in $(seq 3000); do [ -z "$(others)" ] && break; sleep 0.2; done
  [ -z "$(others)" ] || die "another reader still holds a card ($(others)); BENCH_ALLOW_OTHER_CARDS=1 runs anyway"
fi
OTHER_CARD_RUNS=0

start_card() { # latency_ms
  : >"$LOG"
  "$JPKI" virtual-card --state "$CARD_DIR" --log "$LOG" --port $PORT --latency-ms "$1" \
    </dev/null >"$WORK/card.out" 2>&1 &
  card_pid=$!
  "$P11B" wait --reader "$READER" --present 1 --timeout-ms 60000 ||
    { cat "$WORK/card.out" >&2; die "pcscd did not see the virtual card in $READER"; }
}

stop_card() {
  kill "$card_pid"
  wait "$card_pid" 2>/dev/null || true
  card_pid=""
  "$P11B" wait --reader "$READER" --present 0 --timeout-ms 10000 || die "card not removed"
}

tries() { # auth|sign
  sed -n "s/^$1_tries=//p" "$CARD_DIR/state.txt"
}

apdus() { grep -cv '^#' "$LOG" || true; }

# A cold card: pcscd powers an idle card off after about half a second. Wait a second, and
# until the log's last power event is a power off.
cold() {
  sleep 1
  local i
  for i in $(seq 40); do
    [ "$(grep '^# power\|^# reset' "$LOG" | tail -n1)" != "# power on" ] && break
    sleep 0.1
  done
  [ "$(grep '^# power\|^# reset' "$LOG" | tail -n1)" != "# power on" ] || log "warning: card still powered"
  [ -z "$(others)" ] || OTHER_CARD_RUNS=$((OTHER_CARD_RUNS + 1))
}

us() { local t=${1/./}; echo $((10#$t)); } # EPOCHREALTIME → microseconds

verify_sig() { # cert sig what
  openssl x509 -inform DER -in "$CARD_DIR/$1.crt" -pubkey -noout >"$WORK/$1.pub"
  openssl dgst -sha256 -verify "$WORK/$1.pub" -signature "$2" "$MSG" >"$WORK/verify.out" 2>&1 ||
    { cat "$WORK/verify.out" >&2; die "$3: the signature does not verify with $1.crt"; }
}

# Slot ids of the reader's two tokens, per module (found once; both vpcd readers always exist,
# so the ids are stable). Selecting by slot id, not by token label, never touches a card in
# another reader.
declare -A MOD SLOT_AUTH SLOT_SIGN LABEL_AUTH LABEL_SIGN
MOD[ours]=$OURS
MOD[opensc]=$OPENSC
LABEL_AUTH[ours]="JPKI User Authentication"
LABEL_SIGN[ours]="JPKI Digital Signature"
LABEL_AUTH[opensc]="JPKI (User Authentication PIN)"
LABEL_SIGN[opensc]="JPKI (Digital Signature PIN)"

find_slots() {
  local m slots
  for m in ours opensc; do
    slots=$("$P11B" slots --module "${MOD[$m]}" --reader "$READER") ||
      die "$m: cannot list the slots of $READER"
    SLOT_AUTH[$m]=$(echo "$slots" | awk -v l="${LABEL_AUTH[$m]}" '{id=$1; sub(/^slot=/,"",id); $1=""; sub(/^ /,""); if ($0==l) {print id; exit}}')
    SLOT_SIGN[$m]=$(echo "$slots" | awk -v l="${LABEL_SIGN[$m]}" '{id=$1; sub(/^slot=/,"",id); $1=""; sub(/^ /,""); if ($0==l) {print id; exit}}')
    [ -n "${SLOT_AUTH[$m]}" ] && [ -n "${SLOT_SIGN[$m]}" ] ||
      die "$m: tokens ${LABEL_AUTH[$m]} / ${LABEL_SIGN[$m]} not found in $READER: $slots"
    log "$m: slots ${SLOT_AUTH[$m]} (authentication), ${SLOT_SIGN[$m]} (signature)"
  done
}

FLOWS="list objects-auth objects-sign sign-auth sign-sign sign-many sign-many-sig wrong-pin"

# Runs one flow once (cold card), checks its outcome, appends "lat module flow run ms apdus".
run_flow() { # latency module flow run
  local lat=$1 m=$2 flow=$3 run=$4 mod=${MOD[$2]} out=$WORK/out.txt sig=$WORK/sig.bin rc t0 t1
  local -a cmd
  case $flow in
    list) cmd=(pkcs11-tool --module "$mod" -L) ;;
    objects-auth) cmd=(pkcs11-tool --module "$mod" --slot "${SLOT_AUTH[$m]}" -O) ;;
    objects-sign) cmd=(pkcs11-tool --module "$mod" --slot "${SLOT_SIGN[$m]}" -O) ;;
    sign-auth) cmd=(pkcs11-tool --module "$mod" --slot "${SLOT_AUTH[$m]}" --login --pin $AUTH_PIN
      --sign --id 01 -m SHA256-RSA-PKCS -i "$MSG" -o "$sig") ;;
    sign-sign) cmd=(pkcs11-tool --module "$mod" --slot "${SLOT_SIGN[$m]}" --login --pin $SIGN_PIN
      --sign --id 02 -m SHA256-RSA-PKCS -i "$MSG" -o "$sig") ;;
    sign-many) cmd=("$P11B" sign --module "$mod" --reader "$READER" --token "${LABEL_AUTH[$m]}"
      --pin $AUTH_PIN --id 01 --count "$NSIG" --data "$MSG" --out "$sig" --log "$LOG") ;;
    sign-many-sig) cmd=("$P11B" sign --module "$mod" --reader "$READER" --token "${LABEL_SIGN[$m]}"
      --pin $SIGN_PIN --id 02 --always-auth --count "$NSIG_SIG" --data "$MSG" --out "$sig" --log "$LOG") ;;
    wrong-pin) cmd=(pkcs11-tool --module "$mod" --slot "${SLOT_AUTH[$m]}" --login --pin $WRONG_PIN
      --sign --id 01 -m SHA256-RSA-PKCS -i "$MSG" -o "$sig") ;;
  esac
  rm -f "$sig"
  cold
  : >"$LOG"
  t0=$EPOCHREALTIME
  rc=0
  "${cmd[@]}" >"$out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  local n
  n=$(apdus)
  [ "$m" = ours ] && cp "$LOG" "$WORK/trace.$flow" # this module's APDU sequence, for the report
  local what="$m $flow (latency $lat ms, run $run)"
  case $flow in
    wrong-pin)
      [ $rc -ne 0 ] && grep -q CKR_PIN_INCORRECT "$out" ||
        { cat "$out" >&2; die "$what: expected CKR_PIN_INCORRECT"; }
      [ "$(tries auth)" = 2 ] || die "$what: auth tries $(tries auth), expected 2"
      # Give the try back with a correct login (not timed).
      "$P11B" sign --module "$mod" --reader "$READER" --token "${LABEL_AUTH[$m]}" \
        --pin $AUTH_PIN --id 01 --count 0 >/dev/null || die "$what: restoring the try"
      [ "$(tries auth)" = 3 ] || die "$what: auth tries $(tries auth) after a correct login"
      ;;
    *)
      [ $rc -eq 0 ] || { cat "$out" >&2; die "$what failed (exit $rc)"; }
      ;;
  esac
  case $flow in
    list) grep -q "${LABEL_AUTH[$m]}" "$out" && grep -q "${LABEL_SIGN[$m]}" "$out" ||
      { cat "$out" >&2; die "$what: tokens not listed"; } ;;
    objects-auth) grep -q "Certificate Object" "$out" ||
      { cat "$out" >&2; die "$what: no certificate listed"; } ;;
    objects-sign) grep -q "Object;" "$out" || { cat "$out" >&2; die "$what: no object listed"; } ;;
    sign-auth | sign-many) verify_sig auth "$sig" "$what" ;;
    sign-sign | sign-many-sig) verify_sig sign "$sig" "$what" ;;
  esac
  case $flow in
    sign-many) sed "s/^/$lat $m /" "$out" >>"$WORK/many.txt" ;;
    sign-many-sig) sed "s/^/$lat $m /" "$out" >>"$WORK/many-sig.txt" ;;
  esac
  [ "$(tries auth) $(tries sign)" = "3 5" ] || die "$what: tries left $(tries auth)/$(tries sign)"
  echo "$lat $m $flow $run $((($(us "$t1") - $(us "$t0")) / 1000)) $n" >>"$RES"
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

: >"$RES"
: >"$WORK/many.txt"
: >"$WORK/many-sig.txt"
first=1
for lat in $LATENCIES; do
  runs=$RUNS_0
  [ "$lat" = 0 ] || runs=$RUNS_25
  log "latency $lat ms: starting the card"
  start_card "$lat"
  if [ $first = 1 ]; then
    find_slots
    first=0
  fi
  [ "$(tries auth) $(tries sign)" = "3 5" ] || die "the card's tries left: $(tries auth)/$(tries sign)"
  for flow in $FLOWS; do
    log "latency $lat ms: $flow ×$runs per module"
    for run in $(seq "$runs"); do
      # Alternate the order so that neither module always goes first.
      if [ $((run % 2)) = 1 ]; then order="ours opensc"; else order="opensc ours"; fi
      for m in $order; do run_flow "$lat" "$m" "$flow" "$run"; done
    done
  done
  if [ "$lat" = 0 ]; then
    log "load + C_Initialize ×$INIT_RUNS per module"
    for run in $(seq "$INIT_RUNS"); do
      for m in ours opensc; do
        "$P11B" init --module "${MOD[$m]}" --log "$LOG" | sed "s/^/$m /" >>"$WORK/init.txt"
      done
    done
    if [ "$CALLGRIND" = 1 ]; then
      for m in ours opensc; do
        for n in 1 $((NSIG + 1)); do
          log "callgrind: $m, $n signature(s)"
          cold
          valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$m.$n" "$P11B" sign \
            --module "${MOD[$m]}" --reader "$READER" --token "${LABEL_AUTH[$m]}" --pin $AUTH_PIN \
            --id 01 --count "$n" --data "$MSG" >"$WORK/cg.out" 2>&1 ||
            { cat "$WORK/cg.out" >&2; die "callgrind run ($m, $n signatures) failed"; }
        done
        log "callgrind: $m, load + C_Initialize"
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$m.init" "$P11B" init \
          --module "${MOD[$m]}" >"$WORK/cg.out" 2>&1 ||
          { cat "$WORK/cg.out" >&2; die "callgrind run ($m, init) failed"; }
      done
    fi
  fi
  stop_card
done

# ---------------------------------------------------------------------------------------------
# The report.

val() { # latency module flow column(5=ms, 6=apdus) → median
  awk -v l="$1" -v m="$2" -v f="$3" -v c="$4" '$1==l && $2==m && $3==f {print $c}' "$RES" | median
}
apdu_spread() { # latency module flow → "n" or "min–max"
  awk -v l="$1" -v m="$2" -v f="$3" '$1==l && $2==m && $3==f {print $6}' "$RES" | sort -n | uniq |
    awk '{v[NR]=$1} END {if (NR==1) print v[1]; else print v[1] "–" v[NR]}'
}
many() { # latency module key [file] → median
  awk -v l="$1" -v m="$2" -v k="$3" '$1==l && $2==m {split($3,a,"="); if (a[1]==k) print a[2]}' "${4:-$WORK/many.txt}" | median
}
initv() { # module key → median
  awk -v m="$1" -v k="$2" '$1==m {split($2,a,"="); if (a[1]==k) print a[2]}' "$WORK/init.txt" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b+0 > 0) printf "%.2f", a/b; else print "-"}'; }
cg_total() { [ -f "$1" ] && awk '/^(summary|totals):/ {print $2; exit}' "$1"; }
fmt_int() { awk -v n="$1" 'BEGIN {s=sprintf("%d", n); o=""; while (length(s)>3) {o=" " substr(s,length(s)-2) o; s=substr(s,1,length(s)-3)} print s o}'; }

declare -A NAME TARGET
NAME[list]="module load + token listing (\`pkcs11-tool -L\`)"
NAME[objects-auth]="object listing, authentication token, no login (\`-O\`)"
NAME[objects-sign]="object listing, signature token, no login (\`-O\`)"
NAME[sign-auth]="login + 1 signature, authentication key"
NAME[sign-sign]="login + 1 signature, signature key"
NAME[sign-many]="login + $NSIG signatures in one session (authentication key)"
NAME[sign-many-sig]="login + $NSIG_SIG signatures in one session, signature key (password per signature)"
NAME[wrong-pin]="wrong PIN (authentication token)"
TARGET[list]=6
TARGET[objects-auth]=18
TARGET[sign-auth]=12
TARGET[sign-sign]=14
TARGET[sign-many]=$((12 + 4 * (NSIG - 1)))

# One line of APDU names per log: SELECT JPKI, READ 8A ×3, VERIFY? 98 (empty VERIFY: tries
# left), VERIFY 98 (with a PIN), SIGN, SELECT ISD (drops the verified state), …; status words
# other than 9000 in brackets (an empty VERIFY answers 63Cx: not shown).
decode() {
  awk '!/^#/ && NF {
    c = $1; sw = $NF; n = "?"
    if (c ~ /^00A4040C0AD392F000260100000001$/) n = "SELECT JPKI"
    else if (c ~ /^00A4040C07A0000001510000$/) n = "SELECT ISD"
    else if (c ~ /^00A404/) n = "SELECT AID " substr(c, 11)
    else if (c ~ /^00A402/) n = "SELECT EF " substr(c, 11, 4)
    else if (c ~ /^00B0/) n = "READ " substr(c, 5, 2)
    else if (c ~ /^0020/) { n = (length(c) == 8 ? "VERIFY? " : "VERIFY ") substr(c, 7, 2); if (length(c) == 8) sw = "9000" }
    else if (c ~ /^802A/) n = "SIGN"
    else if (c ~ /^0084/) n = "GET CHALLENGE"
    else n = substr(c, 1, 8)
    if (sw != "9000" && length(sw) == 4) n = n " [" sw "]"
    if (n == prev) k++; else { if (prev != "") out = out (out == "" ? "" : ", ") prev (k > 1 ? " ×" k : ""); prev = n; k = 1 }
  }
  END { if (prev != "") out = out (out == "" ? "" : ", ") prev (k > 1 ? " ×" k : ""); print out }' "$1"
}

REPORT=$WORK/report.md
{
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) with \`bench/run.sh\` (module commit $COMMIT)."
  echo
  for lat in $LATENCIES; do
    runs=$RUNS_0
    [ "$lat" = 0 ] || runs=$RUNS_25
    echo "### $lat ms per APDU (cold card, median of $runs runs)"
    echo
    echo "| flow | APDUs ours | APDUs OpenSC | APDU target | ms ours | ms OpenSC | ours/OpenSC |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    for flow in $FLOWS; do
      a=$(val "$lat" ours "$flow" 5)
      b=$(val "$lat" opensc "$flow" 5)
      t=${TARGET[$flow]:-}
      mark=""
      if [ -n "$t" ]; then
        n=$(val "$lat" ours "$flow" 6)
        if awk -v n="$n" -v t="$t" 'BEGIN {exit !(n <= t)}'; then mark="≤ $t ✓"; else mark="≤ $t ✗"; fi
      fi
      r=$(ratio "$a" "$b")
      if [ "$lat" != 0 ]; then
        if awk -v r="$r" 'BEGIN {exit !(r+0 <= 0.2)}'; then r="$r ✓"; else r="$r ✗"; fi
      fi
      echo "| ${NAME[$flow]} | $(apdu_spread "$lat" ours "$flow") | $(apdu_spread "$lat" opensc "$flow") | $mark | $a | $b | $r |"
    done
    echo
  done
  echo "The time ratio target at 25 ms is ≤ 0.20 (✓/✗ above). Wall time is the whole"
  echo "\`pkcs11-tool\` (or \`p11bench\`) process, from a cold card: process start, module load,"
  echo "\`C_Initialize\`, the flow, \`C_Finalize\`."
  echo
  echo "### Each further signature in one session (authentication key, \`p11bench sign\`)"
  echo
  echo "| | ours | OpenSC |"
  echo "|---|--:|--:|"
  fa() { awk -v l="$1" -v m="$2" '$1==l && $2==m && $3 ~ /^further_sig_apdus_(min|max)=/ {split($3,a,"="); print a[2]}' "$WORK/many.txt" | sort -n | uniq | awk '{v[NR]=$1} END {if (NR==1) print v[1]; else print v[1] "–" v[NR]}'; }
  first_lat=${LATENCIES%% *}
  echo "| APDUs per further signature (target ≤ 4) | $(fa "$first_lat" ours) | $(fa "$first_lat" opensc) |"
  echo "| APDUs of login (\`C_Login\`) | $(many "$first_lat" ours login_apdus) | $(many "$first_lat" opensc login_apdus) |"
  echo "| APDUs of the first signature | $(many "$first_lat" ours first_sig_apdus) | $(many "$first_lat" opensc first_sig_apdus) |"
  for lat in $LATENCIES; do
    a=$(many "$lat" ours further_sig_median_ms)
    b=$(many "$lat" opensc further_sig_median_ms)
    echo "| ms per further signature at $lat ms (median) | $a | $b |"
  done
  fas() { awk -v l="$1" -v m="$2" '$1==l && $2==m && $3 ~ /^further_sig_apdus_(min|max)=/ {split($3,a,"="); print a[2]}' "$WORK/many-sig.txt" | sort -n | uniq | awk '{v[NR]=$1} END {if (NR==1) print v[1]; else print v[1] "–" v[NR]}'; }
  echo "| signature key ($NSIG_SIG signatures, \`C_SignInit\` + \`C_Login(CKU_CONTEXT_SPECIFIC)\` + \`C_SignUpdate\` + \`C_SignFinal\` each): APDUs per further signature | $(fas "$first_lat" ours) | $(fas "$first_lat" opensc) |"
  for lat in $LATENCIES; do
    a=$(many "$lat" ours further_sig_median_ms "$WORK/many-sig.txt")
    b=$(many "$lat" opensc further_sig_median_ms "$WORK/many-sig.txt")
    echo "| signature key: ms per further signature at $lat ms (median) | $a | $b |"
  done
  echo
  echo "### This module's APDUs per flow (last run at ${LATENCIES%% *} ms)"
  echo
  echo "\`READ 8A\`: READ BINARY with P1 (here a short EF identifier); \`VERIFY? 98\`: an empty VERIFY"
  echo "(tries left, costs no try); \`VERIFY 98\`: with the PIN; \`SELECT ISD\`: selecting another"
  echo "application, which drops the card's verified state."
  echo
  echo "| flow | APDUs | sequence |"
  echo "|---|--:|---|"
  for flow in $FLOWS; do
    f=$WORK/trace.$flow
    [ -f "$f" ] || continue
    total=$(grep -cv '^#' "$f")
    case $flow in
      sign-many | sign-many-sig)
        # The first signature and what comes before it, then the last signature (all further
        # signatures send the same APDUs: the rows above show min–max).
        if [ $flow = sign-many ]; then src=$WORK/many.txt; k=$NSIG; else src=$WORK/many-sig.txt; k=$NSIG_SIG; fi
        per=$(many "$first_lat" ours further_sig_apdus_max "$src")
        grep -v '^#' "$f" >"$WORK/t0"
        head -n $((total - (k - 1) * per)) "$WORK/t0" >"$WORK/t1"
        tail -n "$per" "$WORK/t0" >"$WORK/t2"
        seq="$(decode "$WORK/t1"); then $((k - 1)) × ($(decode "$WORK/t2"))"
        ;;
      *) seq=$(decode "$f") ;;
    esac
    echo "| $flow | $total | $seq |"
  done
  echo
  echo "### Host-side cost"
  echo
  echo "| | ours | OpenSC | ours/OpenSC |"
  echo "|---|--:|--:|--:|"
  a=$(initv ours load_ms)
  b=$(initv opensc load_ms)
  echo "| module load (dlopen + \`C_GetInterface\`/\`C_GetFunctionList\`), ms, median of $INIT_RUNS processes | $a | $b | $(ratio "$a" "$b") |"
  a=$(initv ours init_ms)
  b=$(initv opensc init_ms)
  echo "| \`C_Initialize\`, ms | $a | $b | $(ratio "$a" "$b") |"
  echo "| APDUs sent by load + \`C_Initialize\` | $(initv ours init_apdus) | $(initv opensc init_apdus) | |"
  if [ "$CALLGRIND" = 1 ]; then
    declare -A CG1 CGN CGI
    for m in ours opensc; do
      CG1[$m]=$(cg_total "$WORK/cg.$m.1")
      CGN[$m]=$(cg_total "$WORK/cg.$m.$((NSIG + 1))")
      CGI[$m]=$(cg_total "$WORK/cg.$m.init")
    done
    a=$(((CGN[ours] - CG1[ours]) / NSIG))
    b=$(((CGN[opensc] - CG1[opensc]) / NSIG))
    echo "| instructions per further signature (callgrind, whole client process: (${NSIG}+1 signatures − 1) / $NSIG) | $(fmt_int "$a") | $(fmt_int "$b") | $(ratio "$a" "$b") |"
    echo "| instructions, process with load + \`C_Initialize\` + \`C_Finalize\` only (\`p11bench init\`) | $(fmt_int "${CGI[ours]}") | $(fmt_int "${CGI[opensc]}") | $(ratio "${CGI[ours]}" "${CGI[opensc]}") |"
    echo "| instructions, process with load, login and 1 signature | $(fmt_int "${CG1[ours]}") | $(fmt_int "${CG1[opensc]}") | $(ratio "${CG1[ours]}" "${CG1[opensc]}") |"
  fi
  echo
  echo "Machine: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) CPUs,"
  echo "$(uname -sr), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
  echo "Versions: $(rustc --version | cut -d' ' -f1-2), opensc $(ver opensc), pcscd $(ver pcscd),"
  echo "vsmartcard-vpcd $(ver vsmartcard-vpcd), openssl $(ver openssl)$([ "$CALLGRIND" = 1 ] && echo ", valgrind $(ver valgrind)")."
  if [ "$OTHER_CARD_RUNS" -gt 0 ]; then
    echo "**$OTHER_CARD_RUNS runs had a card in another reader** (their listing times include it)."
  fi
  echo "Total benchmark time: $((($(us "$EPOCHREALTIME") - $(us "$T_START")) / 1000000)) s."
} >"$REPORT"

cat "$REPORT"

DOC=docs/performance.md
if [ "${BENCH_NO_DOC:-0}" != 1 ] && [ -f "$DOC" ] && grep -q '^<!-- bench:begin -->' "$DOC"; then
  awk -v f="$REPORT" '
    /^<!-- bench:begin -->/ {print; while ((getline l < f) > 0) print l; skip=1; next}
    /^<!-- bench:end -->/ {skip=0}
    !skip {print}' "$DOC" >"$WORK/doc.md"
  cp "$WORK/doc.md" "$DOC"
  log "results written to $DOC"
fi
