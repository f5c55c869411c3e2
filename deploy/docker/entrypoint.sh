#!/bin/sh
# ebsd container entrypoint: the config comes from a mounted file ($EBSD_CONFIG, by default
# /etc/ebsd/ebsd.yaml; mount a ConfigMap or volume over it) or, when EBSD_CONFIG_YAML is set,
# from the environment (ECS task definitions, `docker run -e`), written to $TMPDIR so the
# root filesystem can stay read-only. exec keeps ebsd as PID 1 so SIGTERM/SIGHUP reach it.
set -eu
ebsd="${EBSD_BIN:-/usr/local/bin/ebsd}"
if [ -n "${EBSD_CONFIG_YAML:-}" ]; then
    umask 077
    EBSD_CONFIG="${TMPDIR:-/tmp}/ebsd.yaml"
    printf '%s\n' "$EBSD_CONFIG_YAML" >"$EBSD_CONFIG"
fi
# The Redis AUTH password from an ECS secret (EBSD_REDIS_PASSWORD) goes to a file only ebsd
# reads (redis.password_file), never into ebsd's environment.
if [ -n "${EBSD_REDIS_PASSWORD:-}" ]; then
    umask 077
    printf '%s\n' "$EBSD_REDIS_PASSWORD" >"${TMPDIR:-/tmp}/ebsd-redis-password"
    unset EBSD_REDIS_PASSWORD
fi
exec "$ebsd" --config "${EBSD_CONFIG:-/etc/ebsd/ebsd.yaml}" "$@"
