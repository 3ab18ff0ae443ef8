/*
 * progress.h — one progress line: a bar redrawn in place on a terminal, or a JSON line
 * (for logs and scripts) when stderr is not a terminal.
 */
#ifndef TESSERA_PROGRESS_H
#define TESSERA_PROGRESS_H

#include "coordinator/coordinator.h"

#include <stdio.h>

void progress_print(FILE *out, const coordinator_progress *p, int terminal);

#endif
