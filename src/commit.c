/*-------------------------------------------------------------------------
 *
 * commit.c
 *	  Which commits need not wait for the WAL flush: a claim, or a take of
 *	  replies from a session inbox, when nothing else in its transaction
 *	  wrote anything (asyncrr.lazy_commit).
 *
 * With synchronous_commit on, every commit waits for its WAL to reach disk;
 * on this project's reference machine one fsync costs 150-250 us, and a
 * round trip has four commits (submit, claim, complete, take).  Two of them
 * may be lost in a crash without anyone seeing a difference:
 *
 * - a claim: the request is simply pending again after the crash and is
 *   claimed again, exactly as when a worker dies holding a lease (a worker
 *   that was connected to the crashed server lost its connection anyway).
 *   The lost claim does not count toward max_attempts.  A complete() that
 *   did reach disk carries its claim with it: WAL is flushed in order.
 * - a take from a session inbox: a crash ends every session, and nobody
 *   can take from the inbox of a session that has ended; its reply goes to
 *   the dead letters as requester_gone, as for any session that dies
 *   before taking its replies.  Takes from a durable inbox always wait: a
 *   requester that reconnects must not be handed a reply twice.
 *
 * Such a commit is made asynchronous (synchronous_commit = off for that
 * commit only) when, at PRE_COMMIT, the transaction has written nothing
 * but that call: it had no transaction id when the call began, and no WAL
 * has been written since the call ended.  A worker that claims and records
 * its own work in the same transaction keeps a durable commit.
 *
 * src/commit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "utils/guc.h"

#include "asyncrr.h"

bool		asyncrr_lazy_commit = true;

/* the end of this transaction's WAL when the lazy call ended; 0: none */
static XLogRecPtr lazy_end = InvalidXLogRecPtr;

/* The transaction callback's part here (asyncrr.c calls it last). */
void
asyncrr_commit_xact_callback(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (!XLogRecPtrIsInvalid(lazy_end) && XactLastRecEnd == lazy_end)
			{
				(void) set_config_option("synchronous_commit", "off",
										 PGC_USERSET, PGC_S_SESSION,
										 GUC_ACTION_LOCAL, true, 0, false);
				elog(DEBUG1, "asyncrr: this commit does not wait for the WAL flush (asyncrr.lazy_commit)");
			}
			lazy_end = InvalidXLogRecPtr;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			lazy_end = InvalidXLogRecPtr;
			break;
		default:
			break;
	}
}

/* Before the call writes: has this transaction written nothing yet? */
bool
asyncrr_xact_unwritten(void)
{
	return !TransactionIdIsValid(GetTopTransactionIdIfAny());
}

/*
 * After the call wrote: its commit may be lazy if the transaction had
 * written nothing before (unwritten, from asyncrr_xact_unwritten()) and
 * writes nothing after.
 */
void
asyncrr_allow_lazy_commit(bool unwritten)
{
	if (!asyncrr_lazy_commit || !unwritten || XLogRecPtrIsInvalid(XactLastRecEnd))
	{
		lazy_end = InvalidXLogRecPtr;
		return;
	}
	lazy_end = XactLastRecEnd;
}
