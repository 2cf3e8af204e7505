#!/bin/sh
# Runs a command under mpirun so that rank 0 alone writes to the terminal (one busted summary, as
# CI counts it); the other ranks' output goes to $MOONGRAD_RANK_LOGS/rank<N>.log (default /tmp),
# and is shown when that rank fails.
rank=${OMPI_COMM_WORLD_RANK:-0}
if [ "$rank" = 0 ]; then exec "$@"; fi
log="${MOONGRAD_RANK_LOGS:-/tmp}/moongrad-rank$rank.log"
"$@" > "$log" 2>&1
status=$?
if [ $status != 0 ]; then echo "---- rank $rank failed (status $status):"; tail -n 40 "$log"; fi
exit $status
