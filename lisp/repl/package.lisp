;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; package.lisp --- the package of the system cl-async-repl.
;;;;
;;;; The files of lisp/repl/, in load order:
;;;;   package     this package
;;;;   state       the lock, one RUN per life of the event thread, requests
;;;;   eval        a form's trip to the event thread and back: the waiting
;;;;               side, the running side, the debugger hand-over, cancel
;;;;   hooks       the REPL front ends: SBCL's terminal reader, SLIME's
;;;;               eval hooks; the event thread's debugger policy
;;;;   event-thread  starting and stopping the thread and its loop
;;;;   repl        the four exported functions

(defpackage #:cl-async-repl
  (:use #:cl)
  (:nicknames #:as-repl)
  (:documentation "REPL integration for cl-async: an event loop runs in a
background thread (\"event-thread\") and every form typed at the REPL -- the
plain SBCL terminal REPL or SLIME's -- is evaluated in that thread, inside
the loop, so that as:delay, as:tcp-connect or as-ssl:tcp-ssl-connect work
when typed at the prompt and their callbacks' output appears.")
  (:export
   ;; the async REPL
   #:start-async-repl
   #:stop-async-repl
   #:ensure-async-repl
   #:event-thread-running-p))
