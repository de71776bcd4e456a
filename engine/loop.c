/* loop.c - the engine's loop and its cross-thread work queue. */
#include "loop.h"

#include <pthread.h>
#include <stdlib.h>

#include "error.h"

struct post {
	void (*fn)(void *arg);
	void *arg;
	struct post *next;
};

static uv_loop_t loop;
static uv_async_t wake;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct post *head, *tail;
static int ready;
static uv_thread_t bg_thread;

static void drain(uv_async_t *h)
{
	(void)h;
	pthread_mutex_lock(&lock);
	struct post *p = head;
	head = tail = NULL;
	pthread_mutex_unlock(&lock);
	while (p) {
		struct post *next = p->next;
		p->fn(p->arg);
		free(p);
		p = next;
	}
}

int mf_loop_init(void)
{
	if (ready)
		return 0;
	if (uv_loop_init(&loop) < 0)
		return MF_EINTERNAL;
	if (uv_async_init(&loop, &wake, drain) < 0)
		return MF_EINTERNAL;
	ready = 1;
	return 0;
}

uv_loop_t *mf_loop_get(void)
{
	return &loop;
}

int mf_loop_post(void (*fn)(void *arg), void *arg)
{
	struct post *p = malloc(sizeof(*p));
	if (!p)
		return MF_ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&lock);
	if (tail)
		tail->next = p;
	else
		head = p;
	tail = p;
	pthread_mutex_unlock(&lock);
	uv_async_send(&wake);
	return 0;
}

int mf_loop_run(void)
{
	return uv_run(&loop, UV_RUN_DEFAULT);
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void mf_loop_stop(void)
{
	drain(&wake);
	uv_walk(&loop, close_walk, NULL);
}

static void bg_main(void *arg)
{
	(void)arg;
	mf_loop_run();
}

int mf_loop_start_thread(void)
{
	int rc = mf_loop_init();
	if (rc < 0)
		return rc;
	return uv_thread_create(&bg_thread, bg_main, NULL) == 0 ? 0 : MF_EINTERNAL;
}

static void stop_cb(void *arg)
{
	(void)arg;
	mf_loop_stop();
}

void mf_loop_stop_thread(void)
{
	mf_loop_post(stop_cb, NULL);
	uv_thread_join(&bg_thread);
	mf_loop_close();
}

void mf_loop_close(void)
{
	if (!ready)
		return;
	uv_loop_close(&loop);
	ready = 0;
}
