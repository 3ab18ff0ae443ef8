/* task_state.c — the table of a task's legal transitions (see task_state.h). */
#include "coordinator/task_state.h"

#include <stddef.h>

typedef struct {
    task_state from;
    task_event ev;
    task_state to;
    unsigned actions;
} transition;

enum { J_EXP = TASK_ACT_JOURNAL_EXPANDED, J_FAIL = TASK_ACT_JOURNAL_FAILED, J_DONE_ = TASK_ACT_JOURNAL_DONE,
       J_DEAD_ = TASK_ACT_JOURNAL_DEAD, QUEUE = TASK_ACT_QUEUE, ATTEMPT = TASK_ACT_COUNT_ATTEMPT,
       FINISH = TASK_ACT_FINISH };

/* Every legal transition; anything else is refused. */
static const transition table[] = {
    /* reading the dataset */
    {TASK_NEW,         TASK_EV_QUEUE_EXPAND,    TASK_WAIT_EXPAND, QUEUE},
    {TASK_NEW,         TASK_EV_QUEUE_RENDER,    TASK_WAIT_RENDER, QUEUE},
    /* leasing */
    {TASK_WAIT_EXPAND, TASK_EV_LEASE,           TASK_EXPANDING,   0},
    {TASK_WAIT_RENDER, TASK_EV_LEASE,           TASK_RENDERING,   0},
    /* results */
    {TASK_EXPANDING,   TASK_EV_EXPANDED,        TASK_WAIT_RENDER, J_EXP | QUEUE},
    {TASK_EXPANDING,   TASK_EV_COMPLETED,       TASK_DONE,        J_DONE_ | FINISH}, /* recaption */
    {TASK_RENDERING,   TASK_EV_COMPLETED,       TASK_DONE,        J_DONE_ | FINISH},
    /* failures: error results, expired leases, lost workers */
    {TASK_EXPANDING,   TASK_EV_FAILED,          TASK_WAIT_EXPAND, ATTEMPT | J_FAIL | QUEUE},
    {TASK_RENDERING,   TASK_EV_FAILED,          TASK_WAIT_RENDER, ATTEMPT | J_FAIL | QUEUE},
    {TASK_EXPANDING,   TASK_EV_GIVE_UP,         TASK_DEAD,        ATTEMPT | J_FAIL | J_DEAD_ | FINISH},
    {TASK_RENDERING,   TASK_EV_GIVE_UP,         TASK_DEAD,        ATTEMPT | J_FAIL | J_DEAD_ | FINISH},
    /* a worker stopping (SIGTERM, a drain) returns what it has not started */
    {TASK_EXPANDING,   TASK_EV_HAND_BACK,       TASK_WAIT_EXPAND, QUEUE},
    {TASK_RENDERING,   TASK_EV_HAND_BACK,       TASK_WAIT_RENDER, QUEUE},
    /* replaying an earlier run's journal: the task is not read yet */
    {TASK_NEW,         TASK_EV_REPLAY_EXPANDED, TASK_NEW,         0},
    {TASK_NEW,         TASK_EV_REPLAY_FAILED,   TASK_NEW,         0},
    {TASK_NEW,         TASK_EV_REPLAY_DONE,     TASK_DONE,        FINISH},
    {TASK_NEW,         TASK_EV_REPLAY_DEAD,     TASK_DEAD,        FINISH},
};

int task_state_step(task_state from, task_event ev, task_step *step) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].from == from && table[i].ev == ev) {
            step->to = table[i].to;
            step->actions = table[i].actions;
            return 0;
        }
    return -1;
}

int task_state_terminal(task_state s) { return s == TASK_DONE || s == TASK_DEAD; }

const char *task_state_name(task_state s) {
    static const char *names[] = {"new", "wait_expand", "expanding", "wait_render", "rendering", "done", "dead"};
    return s >= 0 && s < TASK_STATES ? names[s] : "?";
}

const char *task_event_name(task_event ev) {
    static const char *names[] = {"queue_expand", "queue_render", "lease", "expanded", "completed", "failed",
                                  "give_up", "hand_back", "replay_expanded", "replay_failed", "replay_done",
                                  "replay_dead"};
    return ev >= 0 && ev < TASK_EVENTS ? names[ev] : "?";
}
