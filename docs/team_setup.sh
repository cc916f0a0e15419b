#!/usr/bin/env bash
# The steps of docs/team.md, end to end and without a terminal, against a PostgreSQL server:
# a maintainer login and its database, the project, one login per annotator, the shared crops
# folder, each person's password file; then checks that the database enforces the roles.
# The test suite runs it (tests/security/test_team_setup.py); everything it creates is removed.
#
#   docs/team_setup.sh ADMIN_URL WORKDIR
#     ADMIN_URL  the server administrator's URL (a superuser), e.g. postgresql://postgres@127.0.0.1:54329/postgres
#     WORKDIR    an empty folder standing in for the machines' disks
#   PORTRAIT   the command to run (default: portrait)
set -euo pipefail
admin_url=$1
work=$2
portrait=${PORTRAIT:-portrait}  # may be several words ("python -m portrait_builder")
psql_bin=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)
tag=${TEAM_TAG:-$(date +%s)$$}
db="team_$tag"
maint="maint_$tag"
ann="ann_$tag"
rev="rev_$tag"
admin() { "$psql_bin" "$admin_url" -v ON_ERROR_STOP=1 -qAt "$@"; }
host=$(admin -c "SELECT coalesce(host(inet_server_addr()), 'localhost')")
port=$(admin -c "SELECT inet_server_port()")
[ -n "$port" ] || port=5432

cleanup() {
  admin -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'" >/dev/null || true
  admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true  # FORCE: ends sessions still closing
  for role in "$ann" "$rev" "$maint" "portrait_${db}_annotator" "portrait_${db}_reviewer" "portrait_${db}_maintainer"; do
    admin -c "DROP ROLE IF EXISTS \"$role\"" || true
  done
}
trap cleanup EXIT

# Each person is a machine of their own: a home folder with their password file, their PGUSER.
as_person() {  # as_person NAME COMMAND...
  local who=$1; shift
  env -u PGPASSWORD -u PGSERVICE -u PGHOST -u PORTRAIT_DB_USER \
    HOME="$work/home-$who" PGUSER="$who" PGPASSFILE="$work/home-$who/.pgpass" "$@"
}
password_file() {  # password_file LOGIN PASSWORD: the person's ~/.pgpass, readable by them only
  mkdir -p "$work/home-$1"
  printf '%s:%s:%s:%s:%s\n' "$host" "$port" "$db" "$1" "$2" > "$work/home-$1/.pgpass"
  chmod 600 "$work/home-$1/.pgpass"
}

echo "1. server: a maintainer login that may create roles, and the team's database it owns"
admin -c "CREATE ROLE \"$maint\" LOGIN CREATEROLE"
admin -c "CREATE DATABASE \"$db\" OWNER \"$maint\""
maint_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
# the password travels as a SCRAM verifier made here (what `createuser --pwprompt` does)
verifier=$(as_person "$maint" python3 -c '
import sys, hashlib, hmac, base64, os
pw, user = sys.argv[1].encode(), sys.argv[2]
salt, it = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", pw, salt, it)
ck = hmac.new(salted, b"Client Key", "sha256").digest()
sk = hmac.new(salted, b"Server Key", "sha256").digest()
b = lambda x: base64.b64encode(x).decode()
print(f"SCRAM-SHA-256${it}:{b(salt)}${b(hashlib.sha256(ck).digest())}:{b(sk)}")' "$maint_pw" "$maint")
admin -c "ALTER ROLE \"$maint\" PASSWORD '$verifier'"
password_file "$maint" "$maint_pw"

echo "2. maintainer: the project, with a URL that names neither a user nor a password"
url="postgresql://$host:$port/$db"
mkdir -p "$work/maintainer" "$work/shared-crops"
as_person "$maint" $portrait init "$work/maintainer/team" --db "$url"
if as_person "$maint" $portrait init "$work/maintainer/other" --db "postgresql://$maint:$maint_pw@$host:$port/$db" 2>"$work/err"; then
  echo "a URL with a password was accepted" >&2; exit 1
fi
grep -q "pgpass" "$work/err" && ! grep -q "$maint_pw" "$work/err"

echo "3. maintainer: one login per person (passwords from stdin here; typed at a prompt otherwise)"
ann_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$ann_pw" | as_person "$maint" $portrait annotators add "$work/maintainer/team" Ana \
  --attribute age --db-login --login "$ann" --password-stdin
rev_out=$(as_person "$maint" $portrait annotators add "$work/maintainer/team" Rui --role reviewer \
  --db-login --login "$rev" --generate-password)
rev_pw=${rev_out##*(shown only now): }

echo "4. each annotator: a copy of the project folder, their password file, the shared crops folder"
for who in "$ann" "$rev"; do
  mkdir -p "$work/home-$who"
  cp -r "$work/maintainer/team" "$work/home-$who/team"
done
password_file "$ann" "$ann_pw"
password_file "$rev" "$rev_pw"
export PORTRAIT_CROP_ROOT="$work/shared-crops"  # where this machine mounts the team's crops
as_person "$ann" $portrait status "$work/home-$ann/team" >/dev/null
as_person "$ann" $portrait annotators list "$work/home-$ann/team" | grep "Ana .* $ann .*active" >/dev/null
as_person "$maint" $portrait doctor "$work/maintainer/team" | grep "crops 0, files 0" >/dev/null

echo "5. checks: the database enforces the roles"
ann_id=$(as_person "$ann" "$psql_bin" "$url" -qAt -c "SELECT portrait_me()")
[ -n "$ann_id" ]
refused() {  # refused LOGIN SQL: the statement must fail with insufficient privilege
  if as_person "$1" "$psql_bin" "$url" -v ON_ERROR_STOP=1 -qAt -c "$2" >/dev/null 2>"$work/err"; then
    echo "$1 was allowed: $2" >&2; exit 1
  fi
  grep -Eq "permission denied|row-level security" "$work/err" || { cat "$work/err" >&2; exit 1; }
}
refused "$ann" "INSERT INTO annotators (name, role, created_at) VALUES ('mallory', 'maintainer', 0)"
refused "$ann" "DELETE FROM labels"
refused "$ann" "INSERT INTO releases (version, path, manifest_sha256, created_at) VALUES ('v9', '/', 'x', 0)"
refused "$rev" "UPDATE annotators SET role = 'maintainer'"
if as_person "$ann" $portrait annotators add "$work/home-$ann/team" Eve --role maintainer 2>"$work/err"; then
  echo "an annotator added an annotator" >&2; exit 1
fi
grep -q "the database refused this for login $ann" "$work/err"

echo "6. maintainer: disable a person (their labels stay), and no password anywhere in a project folder"
as_person "$maint" $portrait annotators disable "$work/maintainer/team" Rui | grep "disabled" >/dev/null
refused "$rev" "SELECT count(*) FROM crops"
for secret in "$maint_pw" "$ann_pw" "$rev_pw"; do
  if grep -rqF -- "$secret" "$work/maintainer" "$work/home-$ann/team" "$work/home-$rev/team"; then
    echo "a password is in a project folder" >&2; exit 1
  fi
done
echo "team setup OK"
