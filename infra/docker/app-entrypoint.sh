#!/bin/sh
# Entry point of the CryptoLake image. Spark runs in client mode: the driver lives in this container (Bronze writer,
# Dagster runs, dbt) and the executors on spark-worker must connect back to it. cryptolake.lakehouse.spark defaults
# SPARK_LOCAL_IP to 127.0.0.1 (right for the embedded profile, unreachable from another container), so export this
# container's address on the compose network first, unless it was set explicitly.
set -eu
if [ -z "${SPARK_LOCAL_IP:-}" ]; then
  SPARK_LOCAL_IP="$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))')"
  export SPARK_LOCAL_IP
fi
exec "$@"
