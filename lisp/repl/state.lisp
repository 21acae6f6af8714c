;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; state.lisp --- the state shared by the event thread and the threads
;;;; that hand it forms: one lock, one RUN per life of the event thread,
;;;; one REQUEST per form.
;;;;
;;;; Every slot below is read and written with *LOCK* held, except where a
;;;; comment says otherwise.  Each waiting thread has its own condition
;;;; variable (in its REQUEST), and so has the event thread (in the RUN), so
;;;; a notify always wakes the one thread it is meant for: no wake-up is
;;;; lost when several threads wait at once.

(in-package #:cl-async-repl)

(defvar *lock* (bt:make-lock "cl-async-repl")
  "Guards *RUN* and the slots of every RUN and REQUEST.")

(defstruct (run (:constructor make-run ()))
  "One life of the event thread, from START-ASYNC-REPL until its thread ends."
  (thread nil)
  ;; :starting  the thread is setting up its loop
  ;; :running   forms are accepted (EVENT-THREAD-RUNNING-P is true)
  ;; :stopping  stop asked for or the loop is exiting: no new forms
  ;; :finished  the thread's last cleanup ran
  (state :starting :type (member :starting :running :stopping :finished))
  (notifier nil)
  (queue '() :type list)                ; requests not yet taken, oldest first
  (stop-requested nil)                  ; the notifier's callback exits the loop
  (debugging '() :type list)            ; requests whose form is in the debugger
  (started (bt:make-condition-variable :name "event thread started"))
  (wakeup (bt:make-condition-variable :name "event thread wakeup"))
  (failure nil))                        ; why the thread never got :running

(defvar *run* nil
  "The RUN of the event thread that is running or finishing, or nil.")

(defstruct (request (:constructor make-request (run thunk form)))
  "A form (or function) handed to the event thread by a waiting thread."
  (run nil :type run)
  (thunk nil :type function)            ; called in the event thread
  (form nil)                            ; what to name in messages
  ;; :queued :running :debugging :done, or :abandoned once the waiter left
  (state :queued)
  ;; for the waiter: (:values LIST CHANGES), (:aborted CHANGES),
  ;; (:debug CONDITION RESTARTS CHANGES) or (:not-run)
  (message nil)
  ;; for the event thread, while the form is in the debugger:
  ;; (:invoke INDEX ARGS) or (:abort)
  (decision nil)
  ;; the waiter's copy of the last (:debug ...) message's condition and
  ;; restart descriptions (waiter's thread only)
  (condition nil)
  (restarts '())
  (wakeup (bt:make-condition-variable :name "form done")))

(defmethod print-object ((request request) stream)
  (print-unreadable-object (request stream :type t :identity t)
    (let ((*print-length* 4) (*print-level* 2))
      (format stream "~s ~(~a~)" (request-form request) (request-state request)))))

(defmethod print-object ((run run) stream)
  (print-unreadable-object (run stream :type t :identity t)
    (format stream "~(~a~)" (run-state run))))

(defun post-locked (request message)
  "Gives MESSAGE to REQUEST's waiter (with *LOCK* held), unless it left."
  (unless (eq (request-state request) :abandoned)
    (setf (request-message request) message)
    (unless (eq (car message) :debug)
      (setf (request-state request) :done))
    (bt:condition-notify (request-wakeup request))))

(defun post (request message)
  (bt:with-lock-held (*lock*)
    (post-locked request message)))

(defun reject-queued-locked (run)
  "Every request still queued in RUN learns that it will not run."
  (dolist (request (shiftf (run-queue run) '()))
    (post-locked request '(:not-run))))

(defun take-request (run)
  "The oldest queued request of RUN, now :running, or nil (also when the
loop no longer takes forms)."
  (bt:with-lock-held (*lock*)
    (when (eq (run-state run) :running)
      (let ((request (pop (run-queue run))))
        (when request
          (setf (request-state request) :running)
          request)))))
