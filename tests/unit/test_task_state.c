/*
 * test_task_state.c — the coordinator's task state machine (coordinator/task_state.h).
 *
 * The expected transitions are written out here again, from the design (a task is read,
 * queued, leased, expanded, rendered; an attempt fails and is retried or given up; a
 * worker hands an unstarted lease back; an earlier run's journal is replayed), and every
 * state x event pair of the table is checked against them: each legal one goes where it
 * should with the journal entries it should write, every other one is refused. Then a real
 * coordinator is started on a journal that finishes one task twice: it must refuse to start,
 * naming the task, its state and the event.
 */
#include "coordinator/coordinator.h"
#include "coordinator/journal.h"
#include "coordinator/task_state.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    task_state from;
    task_event ev;
    task_state to;
    unsigned journal; /* TASK_ACT_JOURNAL_* bits expected */
    int queued;       /* lands on a queue */
} expect;

static const expect legal[] = {
    {TASK_NEW, TASK_EV_QUEUE_EXPAND, TASK_WAIT_EXPAND, 0, 1},
    {TASK_NEW, TASK_EV_QUEUE_RENDER, TASK_WAIT_RENDER, 0, 1},
    {TASK_WAIT_EXPAND, TASK_EV_LEASE, TASK_EXPANDING, 0, 0},
    {TASK_WAIT_RENDER, TASK_EV_LEASE, TASK_RENDERING, 0, 0},
    {TASK_EXPANDING, TASK_EV_EXPANDED, TASK_WAIT_RENDER, TASK_ACT_JOURNAL_EXPANDED, 1},
    {TASK_EXPANDING, TASK_EV_COMPLETED, TASK_DONE, TASK_ACT_JOURNAL_DONE, 0},
    {TASK_RENDERING, TASK_EV_COMPLETED, TASK_DONE, TASK_ACT_JOURNAL_DONE, 0},
    {TASK_EXPANDING, TASK_EV_FAILED, TASK_WAIT_EXPAND, TASK_ACT_JOURNAL_FAILED, 1},
    {TASK_RENDERING, TASK_EV_FAILED, TASK_WAIT_RENDER, TASK_ACT_JOURNAL_FAILED, 1},
    {TASK_EXPANDING, TASK_EV_GIVE_UP, TASK_DEAD, TASK_ACT_JOURNAL_FAILED | TASK_ACT_JOURNAL_DEAD, 0},
    {TASK_RENDERING, TASK_EV_GIVE_UP, TASK_DEAD, TASK_ACT_JOURNAL_FAILED | TASK_ACT_JOURNAL_DEAD, 0},
    {TASK_EXPANDING, TASK_EV_HAND_BACK, TASK_WAIT_EXPAND, 0, 1},
    {TASK_RENDERING, TASK_EV_HAND_BACK, TASK_WAIT_RENDER, 0, 1},
    {TASK_NEW, TASK_EV_REPLAY_EXPANDED, TASK_NEW, 0, 0},
    {TASK_NEW, TASK_EV_REPLAY_FAILED, TASK_NEW, 0, 0},
    {TASK_NEW, TASK_EV_REPLAY_DONE, TASK_DONE, 0, 0},
    {TASK_NEW, TASK_EV_REPLAY_DEAD, TASK_DEAD, 0, 0},
};
#define N_LEGAL ((int)(sizeof legal / sizeof legal[0]))

static const expect *find_legal(task_state s, task_event ev) {
    for (int i = 0; i < N_LEGAL; i++)
        if (legal[i].from == s && legal[i].ev == ev) return &legal[i];
    return NULL;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "%s", path);
    if (f) { fputs(text, f); fclose(f); }
}

int main(void) {
    TEST_BEGIN();
    const unsigned journal_bits = TASK_ACT_JOURNAL_EXPANDED | TASK_ACT_JOURNAL_FAILED | TASK_ACT_JOURNAL_DONE |
                                  TASK_ACT_JOURNAL_DEAD;
    int n_legal = 0, n_refused = 0;
    for (int s = 0; s < TASK_STATES; s++) {
        CHECK(strcmp(task_state_name((task_state)s), "?") != 0, "state %d has no name", s);
        for (int ev = 0; ev < TASK_EVENTS; ev++) {
            task_step step = {.to = TASK_STATES, .actions = 0xdead};
            int rc = task_state_step((task_state)s, (task_event)ev, &step);
            const expect *want = find_legal((task_state)s, (task_event)ev);
            if (want) {
                n_legal++;
                CHECK(rc == 0, "%s --%s--> should be allowed", task_state_name(s), task_event_name(ev));
                if (rc) continue;
                CHECK(step.to == want->to, "%s --%s--> %s, want %s", task_state_name(s), task_event_name(ev),
                      task_state_name(step.to), task_state_name(want->to));
                CHECK((step.actions & journal_bits) == want->journal, "%s --%s-->: journal actions %#x, want %#x",
                      task_state_name(s), task_event_name(ev), step.actions & journal_bits, want->journal);
                CHECK(!!(step.actions & TASK_ACT_QUEUE) == want->queued, "%s --%s-->: queued %d, want %d",
                      task_state_name(s), task_event_name(ev), !!(step.actions & TASK_ACT_QUEUE), want->queued);
                CHECK(!!(step.actions & TASK_ACT_FINISH) == task_state_terminal(want->to),
                      "%s --%s-->: finishing must go with a terminal state", task_state_name(s), task_event_name(ev));
                CHECK(!!(step.actions & TASK_ACT_COUNT_ATTEMPT) == !!(want->journal & TASK_ACT_JOURNAL_FAILED),
                      "%s --%s-->: a failed attempt is counted exactly when J_FAILED is written", task_state_name(s),
                      task_event_name(ev));
            } else {
                n_refused++;
                CHECK(rc == -1, "%s --%s--> must be refused (table says -> %s)", task_state_name(s),
                      task_event_name(ev), task_state_name(step.to));
                CHECK(step.to == TASK_STATES && step.actions == 0xdead, "a refused step must set nothing");
            }
        }
    }
    CHECK(n_legal == N_LEGAL, "walked %d legal transitions, expected %d", n_legal, N_LEGAL);
    CHECK(n_refused == TASK_STATES * TASK_EVENTS - N_LEGAL, "refused %d", n_refused);
    /* nothing leaves a terminal state */
    for (int ev = 0; ev < TASK_EVENTS; ev++) {
        task_step step;
        CHECK(task_state_step(TASK_DONE, (task_event)ev, &step) < 0, "done --%s--> allowed", task_event_name(ev));
        CHECK(task_state_step(TASK_DEAD, (task_event)ev, &step) < 0, "dead --%s--> allowed", task_event_name(ev));
    }

    /* A real coordinator refuses a journal that finishes task 2 twice (task 0 still open, so
     * the second J_DONE is not a stale entry below the watermark). */
    char dir[] = "/tmp/tessera_test_task_state_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char data[256], out[256], jpath[300];
    snprintf(data, sizeof data, "%s/prompts.txt", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(jpath, sizeof jpath, "%s/journal.tsj", out);
    write_file(data, "a\nb\nc\nd\ne\nf\n");
    CHECK_OK(coordinator_make_dirs(out));
    journal *j = journal_open(jpath, NULL, NULL);
    CHECK(j != NULL, "%s", ts_last_error());
    const char *zero = "0";
    journal_entry done = {.type = J_DONE, .task = 2, .a = 1, .b = 0, .nstr = 1, .str = &zero};
    CHECK_OK(journal_append(j, &done));
    CHECK_OK(journal_append(j, &done));
    journal_destroy(&j);
    job_spec job;
    job_defaults(&job);
    snprintf(job.kind, sizeof job.kind, "render");
    snprintf(job.dataset, sizeof job.dataset, "%s", data);
    snprintf(job.output, sizeof job.output, "%s", out);
    snprintf(job.endpoint, sizeof job.endpoint, "inproc://test-task-state");
    job.task_size = 1;
    coordinator_options o = {.job = &job};
    int rc = coordinator_run(&o, NULL);
    const char *err = ts_last_error();
    CHECK(rc < 0, "a journal finishing task 2 twice must be refused (rc %d)", rc);
    CHECK(strstr(err, "task 2") && strstr(err, "replay_done") && strstr(err, "'done'"),
          "the error names the task, the event and the state: %s", err);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    return TEST_END();
}
