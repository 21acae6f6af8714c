;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; hooks.lisp --- how REPL forms reach the event thread, and what the
;;;; event thread does when a callback would enter the debugger.
;;;;
;;;; Two front ends are hooked while the async REPL runs:
;;;;
;;;; - SBCL's own REPL (the terminal, or SLIME's *inferior-lisp* buffer):
;;;;   SB-INT:*REPL-READ-FORM-FUN* reads each form.  It is wrapped: the
;;;;   form read is returned as (%TERMINAL-EVAL 'FORM), which SBCL's REPL
;;;;   then evaluates as usual, in its own thread; %TERMINAL-EVAL hands FORM
;;;;   to the event thread and waits for its values, which the REPL prints
;;;;   and records in * ** *** (and FORM in + ++ +++).  The original reader
;;;;   function is put back when the async REPL stops.
;;;; - SLIME's REPL: the eval hooks of SWANK (*SLIME-REPL-EVAL-HOOKS*, from
;;;;   SLIME's contrib swank-listener-hooks), as upstream does.
;;;;
;;;; A form read while the async REPL does not run (or in the event thread
;;;; itself) is left alone.

(in-package #:cl-async-repl)

(defun forms-go-to-event-thread-p ()
  "True when a form read in this thread now goes to the event thread."
  (let ((run *run*))
    (and run
         (eq (run-state run) :running)
         (not (eq (bt:current-thread) (run-thread run))))))

;;;# SBCL's terminal REPL

(defvar *original-read-form-fun* nil
  "The value of SB-INT:*REPL-READ-FORM-FUN* the hook replaced (and wraps).")

(defun %terminal-eval (form)
  "What the wrapped reader gives SBCL's REPL to evaluate for FORM."
  ;; SBCL's REPL set - to (%TERMINAL-EVAL 'FORM); make it FORM, so + ++
  ;; +++ show what the user typed.
  (setf - form)
  (repl-eval form))

(defun terminal-read-form (in out)
  "SB-INT:*REPL-READ-FORM-FUN* while the async REPL runs: reads a form
with the original function and, if it goes to the event thread, wraps it."
  (let ((form (funcall (or *original-read-form-fun* #'sb-impl::repl-read-form-fun)
                       in out)))
    (if (forms-go-to-event-thread-p)
        (list '%terminal-eval (list 'quote form))
        form)))

(defun install-terminal-hook ()
  (let ((current sb-int:*repl-read-form-fun*))
    (unless (eq current #'terminal-read-form)
      (setf *original-read-form-fun* current
            sb-int:*repl-read-form-fun* #'terminal-read-form))))

(defun uninstall-terminal-hook ()
  ;; If something wrapped our function since, it stays in place and passes
  ;; forms through (TERMINAL-READ-FORM checks on every form).
  (when (eq sb-int:*repl-read-form-fun* #'terminal-read-form)
    (setf sb-int:*repl-read-form-fun*
          (or *original-read-form-fun* #'sb-impl::repl-read-form-fun))))

;;;# SLIME's REPL

(defun swank-symbol (name)
  (let ((swank (find-package "SWANK")))
    (and swank (find-symbol name swank))))

(defun swank-eval-hook (form)
  "The function in SWANK's *SLIME-REPL-EVAL-HOOKS* while the async REPL
runs: hands FORM to the event thread, or declines."
  (if (forms-go-to-event-thread-p)
      (repl-eval form)
      (let ((pass (swank-symbol "*SLIME-REPL-EVAL-HOOK-PASS*")))
        (if (and pass (boundp pass))
            (throw (symbol-value pass) (symbol-value pass))
            (eval form)))))

(defun swank-hooks-variable ()
  "SWANK's *SLIME-REPL-EVAL-HOOKS* symbol when SWANK is loaded, loading the
contrib that defines it if needed; nil without SWANK.  Warns when SWANK is
loaded but the contrib cannot be."
  (when (find-package "SWANK")
    (or (swank-symbol "*SLIME-REPL-EVAL-HOOKS*")
        (let ((require (swank-symbol "SWANK-REQUIRE")))
          (when (and require (fboundp require))
            (ignore-errors (funcall require :swank-listener-hooks)))
          (swank-symbol "*SLIME-REPL-EVAL-HOOKS*"))
        (progn
          (warn "cl-async-repl: SWANK is loaded but not its contrib ~
                 swank-listener-hooks (SWANK::*SLIME-REPL-EVAL-HOOKS*), so ~
                 forms typed in SLIME's REPL are evaluated in SLIME's thread, ~
                 not in the event thread.")
          nil))))

(defun install-swank-hook (variable)
  (when variable
    (pushnew 'swank-eval-hook (symbol-value variable))))

(defun uninstall-swank-hook ()
  (let ((variable (swank-symbol "*SLIME-REPL-EVAL-HOOKS*")))
    (when (and variable (boundp variable))
      (setf (symbol-value variable)
            (remove 'swank-eval-hook (symbol-value variable))))))

;;;# Installing both

(defun install-hooks (swank-variable)
  (install-terminal-hook)
  (install-swank-hook swank-variable))

(defun uninstall-hooks ()
  (uninstall-terminal-hook)
  (uninstall-swank-hook))

;;;# Errors in callbacks (not in REPL forms)
;;;
;;; An error in a timer or socket callback of the event thread enters the
;;; debugger there (the loop runs with :catch-app-errors nil, as
;;; upstream).  With SLIME that is SLDB, in the event thread, with the
;;; callback restarts (quit aborts the callback: *SAFE-SLDB-QUIT-RESTART*).
;;; A terminal has one debugger, owned by the REPL thread: SBCL would park
;;; the event thread until the REPL thread called RELEASE-FOREGROUND, the
;;; loop stalled and every later form hung.  So when the starting thread
;;; has no *DEBUGGER-HOOK* (no SLIME), the event thread's debugger prints
;;; the condition and a short backtrace and aborts that callback
;;; (ABORT-CALLBACK), and the loop goes on.

(defparameter *backtrace-frames* 15
  "Frames of backtrace printed for an error in a callback of the event
thread in a terminal.")

(defun report-and-abort-callback (condition hook)
  "The event thread's SB-EXT:*INVOKE-DEBUGGER-HOOK* without SLIME."
  (declare (ignore hook))
  (let ((restart (or (find-restart 'cl-async-util:abort-callback condition)
                     (find-restart 'abort condition))))
    (ignore-errors
     (format *error-output* "~&;; cl-async-repl: in the event thread, ~
                             outside a REPL form: ~a~%;;   (a ~s)~%"
             condition (type-of condition))
     (sb-debug:print-backtrace :start 2 :count *backtrace-frames*
                              :stream *error-output*)
     (format *error-output* "~&;; invoking restart ~a: ~a~%"
             (and restart (restart-name restart)) restart)
     (finish-output *error-output*))
    (if restart
        (invoke-restart restart)
        (abort))))
