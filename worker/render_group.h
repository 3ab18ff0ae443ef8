/*
 * render_group.h — render workers as MPI ranks in groups that share a U-Net (issue 15):
 *
 *   mpirun -np 8 tessera worker render --tp 2 --connect ENDPOINT --backend model --model M
 *
 * is 4 groups of 2 consecutive ranks. Rank 0 of each group is an ordinary render worker
 * (worker_run: the ZeroMQ connection, leases, heartbeats, the pipeline, the images), whose
 * U-Net is split over its group (unet.h): each U-Net call's inputs go to the group by
 * broadcast, the other ranks serve them (txt2img_follow) holding only their U-Net shards. The
 * coordinator sees one worker per group. A rank that dies ends its own group only: the group's
 * ranks watch each other (comm_watch.h); the others end at once, rank 0 after handing its tasks
 * back to the coordinator (the running ones too), and the other groups go on. That needs
 * `mpirun --enable-recovery` (without it OpenMPI aborts every rank of the job).
 */
#ifndef TESSERA_RENDER_GROUP_H
#define TESSERA_RENDER_GROUP_H

#include "worker/worker.h"

/* Runs this rank's part: worker_run on each group's rank 0, txt2img_follow on the others.
 * tp: ranks per group (dividing the world); parallel: "tp" (default) or "cfg"/"dp" (the
 * batch split). 0 on a clean end, -1 with the reason. */
int render_group_run(const worker_options *options, int tp, const char *parallel);

#endif
