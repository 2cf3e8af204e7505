#!/bin/sh
# Runs a command under mpirun so that rank 0 alone writes to the terminal (one busted summary, as
# CI counts it), without colour codes (mpirun gives each rank a pseudo-terminal); the other ranks'
# output goes to $MOONGRAD_RANK_LOGS/moongrad-rank<N>.log (default /tmp), shown when a rank fails.
rank=${OMPI_COMM_WORLD_RANK:-0}
log="${MOONGRAD_RANK_LOGS:-/tmp}/moongrad-rank$rank.log"
"$@" > "$log" 2>&1
status=$?
if [ "$rank" = 0 ]; then
    sed 's/\x1b\[[0-9;]*m//g' "$log"
elif [ $status != 0 ]; then
    echo "---- rank $rank failed (status $status):"
    tail -n 40 "$log"
fi
exit $status
