/*
 * task_state.h — the life of a coordinator task as one table: state x event -> next state
 * and what the coordinator does on the way (journal entries, queueing). coordinator.c
 * changes a task's state only through task_transition(), which looks the pair up here;
 * a pair the table lacks is an illegal transition and an error naming task, state and event.
 *
 *   NEW ─queue_expand─► WAIT_EXPAND ─lease─► EXPANDING ─expanded─► WAIT_RENDER ─lease─► RENDERING
 *   NEW ─queue_render─► WAIT_RENDER              │                      ▲                │
 *        EXPANDING / RENDERING ─failed / hand_back─► back to its WAIT_ state          completed
 *        EXPANDING / RENDERING ─give_up─► DEAD       EXPANDING ─completed─► DONE (recaption)
 *   NEW ─replay_done / replay_dead─► DONE / DEAD     (entries of an earlier run's journal)
 *   NEW ─replay_expanded / replay_failed─► NEW      (kept until the records are read again)
 */
#ifndef TESSERA_TASK_STATE_H
#define TESSERA_TASK_STATE_H

typedef enum {
    TASK_NEW = 0,        /* known (from the journal or being read), not queued */
    TASK_WAIT_EXPAND,    /* queued for an expander */
    TASK_EXPANDING,      /* leased to an expander */
    TASK_WAIT_RENDER,    /* queued for a renderer */
    TASK_RENDERING,      /* leased to a renderer */
    TASK_DONE,           /* finished: its manifest lines and J_DONE are written */
    TASK_DEAD,           /* given up: dead-lettered, J_DEAD written */
    TASK_STATES
} task_state;

typedef enum {
    TASK_EV_QUEUE_EXPAND = 0, /* records read; the prompts need expanding */
    TASK_EV_QUEUE_RENDER,     /* records read; render as given or with the journal's expansions */
    TASK_EV_LEASE,            /* sent to a worker under a new lease */
    TASK_EV_EXPANDED,         /* an expander's result for a generate job: render next */
    TASK_EV_COMPLETED,        /* the last stage's result: done */
    TASK_EV_FAILED,           /* an attempt failed (error result, lease expired, worker lost); retries left */
    TASK_EV_GIVE_UP,          /* an attempt failed and it was the last: dead-letter */
    TASK_EV_HAND_BACK,        /* the worker returned the lease unstarted: no attempt counted */
    TASK_EV_REPLAY_EXPANDED,  /* journal of an earlier run: J_EXPANDED */
    TASK_EV_REPLAY_FAILED,    /* journal of an earlier run: J_FAILED */
    TASK_EV_REPLAY_DONE,      /* journal of an earlier run: J_DONE */
    TASK_EV_REPLAY_DEAD,      /* journal of an earlier run: J_DEAD */
    TASK_EVENTS
} task_event;

/* What a transition does besides changing the state (a bit set). Replayed events write
 * nothing: their entries are already in the journal. */
enum {
    TASK_ACT_JOURNAL_EXPANDED = 1 << 0, /* J_EXPANDED with the expanded texts */
    TASK_ACT_JOURNAL_FAILED = 1 << 1,   /* J_FAILED with the attempt and the reason */
    TASK_ACT_JOURNAL_DONE = 1 << 2,     /* J_DONE with the manifest's size */
    TASK_ACT_JOURNAL_DEAD = 1 << 3,     /* dead-letter line, then J_DEAD */
    TASK_ACT_QUEUE = 1 << 4,            /* onto the queue of the new WAIT_ state */
    TASK_ACT_COUNT_ATTEMPT = 1 << 5,    /* one more failed attempt */
    TASK_ACT_FINISH = 1 << 6,           /* terminal: counted, packed, the watermark moves */
};

typedef struct {
    task_state to;
    unsigned actions;
} task_step;

/* The table's entry for (from, ev): 0 and *step filled, or -1 when the transition is not
 * allowed (nothing set; the caller names the task in the error). */
int task_state_step(task_state from, task_event ev, task_step *step);
int task_state_terminal(task_state s);
const char *task_state_name(task_state s);
const char *task_event_name(task_event ev);

#endif
