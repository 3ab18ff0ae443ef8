/* progress.c — progress bar / JSON progress lines (see progress.h). */
#include "coordinator/progress.h"

void progress_print(FILE *out, const coordinator_progress *p, int terminal) {
    uint64_t finished = p->records_done + p->records_dead;
    double eta = -1;
    if (p->records_total && p->records_per_s > 0)
        eta = (double)(p->records_total > finished ? p->records_total - finished : 0) / p->records_per_s;
    if (!terminal) {
        fprintf(out, "{\"event\":\"progress\",\"done\":%llu,\"dead\":%llu,\"total\":%lld,\"rejected\":%llu,"
                     "\"rate\":%.2f,\"eta_s\":%.1f,\"workers\":%llu,\"elapsed_s\":%.1f,\"complete\":%s}\n",
                (unsigned long long)p->records_done, (unsigned long long)p->records_dead,
                p->dataset_done ? (long long)p->records_total : -1LL, (unsigned long long)p->rejected,
                p->records_per_s, eta, (unsigned long long)p->workers, p->elapsed, p->complete ? "true" : "false");
        fflush(out);
        return;
    }
    char bar[31];
    double frac = p->records_total ? (double)finished / (double)p->records_total : 0;
    for (int i = 0; i < 30; i++) bar[i] = p->dataset_done && i < (int)(frac * 30 + 1e-9) ? '#' : '.';
    bar[30] = 0;
    char total[32], eta_s[32] = "?";
    if (p->dataset_done) snprintf(total, sizeof total, "%llu", (unsigned long long)p->records_total);
    else snprintf(total, sizeof total, "?");
    if (eta >= 0) snprintf(eta_s, sizeof eta_s, "%d:%02d", (int)eta / 60, (int)eta % 60);
    fprintf(out, "\r[%s] %llu/%s  %.1f rec/s  ETA %s  dead %llu  rejected %llu  workers %llu ", bar,
            (unsigned long long)finished, total, p->records_per_s, eta_s, (unsigned long long)p->records_dead,
            (unsigned long long)p->rejected, (unsigned long long)p->workers);
    if (p->complete) fputc('\n', out);
    fflush(out);
}
