;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; repl.lisp --- the exported functions of cl-async-repl.

(in-package #:cl-async-repl)

(defun start-async-repl (&optional on-startup)
  "Starts the async REPL: an event loop, (as:with-event-loop () ...) with
:catch-app-errors nil, in a new thread named \"event-thread\", and REPL
hooks -- SBCL's terminal REPL reader, and SLIME's eval hooks when SWANK is
loaded -- so that every form typed at the REPL is evaluated in that
thread, inside the loop (as:delay, as:tcp-connect, as-ssl:tcp-ssl-connect
work at the prompt; their callbacks' output appears), while the REPL
thread waits for its values, which the REPL prints.  IN-PACKAGE (and the
other reader and printer variables) carry over in both directions.

The event thread has its own bindings of the starting thread's streams
(*standard-output*, *debug-io*...) and of its reader and printer
variables.  A form that errors enters the debugger in the REPL thread, on
the same condition, with the form's restarts (run in the event thread,
which waits meanwhile) plus ABORT (abort the form) and EXIT-EVENT-LOOP;
leaving the debugger by the REPL's own ABORT aborts the form.  A form
never leaves the REPL waiting: if it unwinds it returns no values, and a
form the loop exits before running signals an error.  ^C while a form
runs, then ABORT, interrupts the form in the event thread.  Errors in
callbacks (not REPL forms) enter SLDB in the event thread under SLIME;
in a terminal they are printed with a short backtrace and the callback
is aborted (ABORT-CALLBACK), the loop going on.

ON-STARTUP, a function of no arguments, runs in the event thread once its
loop has started, before any REPL form (as an ordinary callback: it may
start servers and timers).  Sets cl-async-base:*safe-sldb-quit-restart*
to t.  Signals an error if the event thread already runs; waits first for
a previous one still exiting.  Returns no values.  Stop with
STOP-ASYNC-REPL, or (as:exit-event-loop) typed at the REPL."
  (start-event-thread on-startup))

(defun stop-async-repl ()
  "Stops the async REPL: the event loop exits after the current form or
callback (timers pending are dropped, handles closed), its thread ends,
the REPL hooks are removed -- later forms are evaluated in the REPL thread
again -- and cl-async-base:*safe-sldb-quit-restart* is set to nil.  Works
typed at the REPL (it then runs in the event thread, and the REPL waits
for the thread to end before printing) and from any other thread, where
it waits (at most 10 seconds) for the event thread to end.  Forms queued
and not yet started signal an error in their threads.  Signals an error
if the async REPL is not running.  Returns nil."
  (stop-event-thread))

(defun ensure-async-repl (&optional on-startup)
  "Starts the async REPL (START-ASYNC-REPL, with ON-STARTUP) unless it is
running.  If it is running, calls ON-STARTUP, when given, in the event
thread and returns its values (errors in it are handed to this thread's
debugger as for REPL forms); without ON-STARTUP it then returns nil.
After starting it returns no values.  Unlike
upstream, ON-STARTUP runs in the event thread in both cases (upstream
called it in the calling thread when the REPL was already running)."
  (if (event-thread-running-p)
      (when on-startup
        (call-in-event-thread on-startup))
      (start-async-repl on-startup)))

(defun event-thread-running-p ()
  "True while the async REPL's event thread runs and takes forms: from
START-ASYNC-REPL until STOP-ASYNC-REPL is called or its loop exits."
  (bt:with-lock-held (*lock*)
    (let ((run *run*))
      (and run (eq (run-state run) :running) t))))
