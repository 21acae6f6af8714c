;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; event-loop.lisp --- starting, running, exiting and tearing down loops.
;;;;
;;;; How callbacks and errors work: the C loop queues every libuv event and
;;;; dispatches the queue from casl_loop_run, after uv_run has returned, so
;;;; no libuv frame is ever below a Lisp callback.  An error escaping a
;;;; callback (with :catch-app-errors nil) therefore simply unwinds through
;;;; casl_loop_run: START-EVENT-LOOP's unwind-protect runs the exit
;;;; callbacks and frees the loop (casl_loop_free resets the dispatcher's
;;;; state), the error leaves WITH-EVENT-LOOP unchanged, and the next loop
;;;; starts from scratch.  The debugger is entered inside the callback, so
;;;; its backtrace and restarts (CONTINUE skips the callback) are intact.

(in-package #:cl-async)

(defclass loop-base (event-base)
  ((objects :accessor loop-objects :initform (make-hash-table :test 'eql)
            :documentation "id -> Lisp object of every live handle and
pending DNS lookup.")
   (next-id :accessor loop-next-id :initform 1
            :documentation "The id given to the next handle.")
   (exiting :accessor loop-exiting :initform nil
            :documentation "True once EXIT-EVENT-LOOP was called.")
   (read-vector :accessor loop-read-vector :initform nil
                :documentation "The vector the read-cbs of sockets with
:read-buffer :reuse receive (see REUSED-READ-VECTOR), made on first use.")
   (signal-watchers :accessor loop-signal-watchers
                    :initform (make-hash-table :test 'eql)
                    :documentation "signal number -> the loop's one
watcher of it (see SIGNAL-HANDLER)."))
  (:documentation "The event-base of a running cl-async loop."))

(setf (documentation 'loop-exiting 'function)
      "True once EXIT-EVENT-LOOP was called on this event-base (the loop
stops after the current pass).")

(defun check-event-loop-running ()
  "Signals an error unless an event loop runs in this thread."
  (unless (and *event-base* (event-base-c *event-base*))
    (error "No event loop is running in this thread: call this inside ~
            (as:with-event-loop () ...).")))

(declaim (inline loop-pointer))
(defun loop-pointer ()
  (event-base-c *event-base*))

(defun register-object (object)
  "Gives OBJECT a fresh id in the current loop and returns the id."
  (let* ((base *event-base*)
         (id (loop-next-id base)))
    (setf (loop-next-id base) (1+ id)
          (gethash id (loop-objects base)) object)
    id))

(declaim (inline find-object))
(defun find-object (id)
  (values (gethash id (loop-objects *event-base*))))

(defun unregister-object (id)
  (remhash id (loop-objects *event-base*)))

;;;# Starting and stopping

(defun start-event-loop (start-fn &key catch-app-errors
                                    (send-errors-to-eventcb
                                     *send-errors-to-eventcb*))
  "Runs an event loop in this thread until nothing keeps it alive or
EXIT-EVENT-LOOP is called.  START-FN (a function of no arguments) runs on
the loop's first pass, not synchronously.

  :catch-app-errors  nil (the default): an error escaping a callback is
      signalled where it happened, with a CONTINUE restart that skips the
      callback; if nothing handles it, it leaves START-EVENT-LOOP
      unchanged after the loop is torn down.  T or a function: errors are
      caught and handed to the operation's event-cb, else to the function,
      else to HANDLE-ERROR, and the loop goes on.
  :send-errors-to-eventcb  with :catch-app-errors, whether caught errors go
      to the event-cb of the operation (default *send-errors-to-eventcb*, t).

Returns 0 after a natural end, 1 if stopped while handles were active.
Loops do not nest; each thread may run its own."
  (when *event-base*
    (error "Event loop already started in this thread.  Please wait for it ~
            to exit (loops cannot be nested)."))
  (let* ((base (make-instance 'loop-base
                              :id (incf *event-base-next-id*)
                              :catch-app-errors catch-app-errors
                              :send-errors-to-eventcb send-errors-to-eventcb))
         (*event-base* base)
         (*buffer-writes* *buffer-writes*)
         (*buffer-size* *buffer-size*)
         (*data-registry* (event-base-data-registry base))
         (*function-registry* (event-base-function-registry base))
         (*sldb-quit-symbol* (find-sldb-quit-symbol)))
    (multiple-value-bind (ptr code) (cl-async-ffi:loop-new)
      (unless ptr
        (error 'event-error :code code
                            :msg (format nil "cannot create an event loop: ~a"
                                         (cl-async-ffi:strerror code))))
      (setf (event-base-c base) ptr)
      (unwind-protect
           (progn
             (delay start-fn)
             (run-loop ptr))
        (teardown-loop base)))))

(defparameter *interrupt-latency-ms* 100
  "How long the loop may wait in C before it returns to Lisp, where
interrupts deferred meanwhile (^C, SIGTERM, WITH-TIMEOUT) are handled.")

(defun run-loop (ptr)
  "Runs the C loop PTR until it is done or stopped; 0 after a natural end,
1 if stopped with active handles."
  (loop
    (let ((rc (cl-async-ffi:loop-run-once ptr *interrupt-latency-ms*)))
      (cond ((= rc cl-async-ffi:+run-more+))
            ((= rc cl-async-ffi:+run-done+) (return 0))
            ((= rc cl-async-ffi:+run-stopped+)
             (return (if (cl-async-ffi:loop-alive-p ptr) 1 0)))
            (t (error 'event-error
                      :code rc
                      :msg (format nil "the event loop failed: ~a"
                                   (cl-async-ffi:strerror rc))))))))

(defmacro with-event-loop ((&key catch-app-errors
                             (send-errors-to-eventcb '*send-errors-to-eventcb*))
                           &body body)
  "Runs BODY on a new event loop: START-EVENT-LOOP with a lambda over BODY.
See START-EVENT-LOOP for the options."
  `(start-event-loop (lambda () ,@body)
                     :catch-app-errors ,catch-app-errors
                     :send-errors-to-eventcb ,send-errors-to-eventcb))

(defun exit-event-loop ()
  "Stops the current loop after the events of the current pass: pending
timers never fire, and every handle is closed.  Call it from the loop's
thread (from another thread, trigger a notifier that calls it)."
  (check-event-loop-running)
  (setf (loop-exiting *event-base*) t)
  (cl-async-ffi:loop-stop (loop-pointer)))

(defun add-event-loop-exit-callback (fn)
  "Runs FN (no arguments) when the current loop exits, however it exits.
Exit callbacks run last-added first, before the handles are closed, with
the loop still current (they may call cl-async functions)."
  (check-event-loop-running)
  (push fn (event-base-exit-functions *event-base*)))

(defgeneric object-loop-closed (object)
  (:documentation "Marks OBJECT closed because its loop was torn down.")
  (:method ((object t)) nil))

(defun teardown-loop (base)
  (unwind-protect
       (loop :for fn := (pop (event-base-exit-functions base))
             :while fn
             :do (funcall fn))
    (unwind-protect
         (loop :for object :being :the :hash-values :of (loop-objects base)
               :do (object-loop-closed object))
      (let ((ptr (event-base-c base)))
        (setf (event-base-c base) nil)
        (clrhash (loop-objects base))
        (when ptr
          (cl-async-ffi:loop-free ptr))))))

;;;# Inspection

(defun stats ()
  "Counters of the current loop, as a plist:
  :open-dns-queries           DNS lookups in flight
  :fn-registry-count          callback entries (upstream's meaning: one for
                              the loop plus one per live handle)
  :data-registry-count        data entries (one per live handle)
  :incoming-tcp-connections   open accepted connections (TCP and TLS)
  :outgoing-tcp-connections   open outgoing connections (TCP and TLS)
  :open-handles               handles not yet reported closed
  :tls-connections            live TLS filters
  :write-queue-bytes          bytes queued for writing"
  (check-event-loop-running)
  (let* ((st (cl-async-ffi:loop-stats (loop-pointer)))
         (objects (hash-table-count (loop-objects *event-base*))))
    (list :open-dns-queries (getf st :dns-queries)
          :fn-registry-count (+ 1 objects
                                (hash-table-count *function-registry*))
          :data-registry-count (+ objects (hash-table-count *data-registry*))
          :incoming-tcp-connections (getf st :connections-in)
          :outgoing-tcp-connections (getf st :connections-out)
          :open-handles (getf st :handles)
          :tls-connections (getf st :tls)
          :write-queue-bytes (getf st :write-queue))))

(defun dump-event-loop-status ()
  "Prints one line per open handle of the current loop (for debugging)."
  (check-event-loop-running)
  (write-string (cl-async-ffi:loop-describe (loop-pointer)) *standard-output*)
  (values))

(defgeneric ref (handle)
  (:documentation "Makes HANDLE (an event, notifier, socket or server) keep
the event loop alive again after UNREF."))

(defgeneric unref (handle)
  (:documentation "Lets the event loop exit even though HANDLE (an event,
notifier, socket or server) is still active."))

;;;# Event dispatch (called from the callbacks of lisp/ffi/callbacks.lisp)

(defgeneric object-timer-fired (object)
  (:documentation "The timer of OBJECT fired."))
(defgeneric object-notified (object)
  (:documentation "The notifier OBJECT was triggered."))
(defgeneric object-closed (object)
  (:documentation "The C library closed OBJECT's handle: its id is gone."))
(defgeneric object-connected (object)
  (:documentation "OBJECT (a socket) is connected; for TLS, its handshake is
complete.  Runs the connect-cb."))
(defgeneric object-read (object pointer length)
  (:documentation "OBJECT (a socket) received LENGTH bytes at POINTER, a
foreign pointer valid during the call only: a method copies them with
CL-ASYNC-FFI:COPY-FOREIGN-OCTETS or CL-ASYNC-FFI:FOREIGN-OCTETS."))
(defgeneric object-written (object)
  (:documentation "Everything written to OBJECT has been handed to the kernel."))
(defgeneric object-error (object code)
  (:documentation "OBJECT (a socket or server) failed, or its peer ended the
connection; or OBJECT (any other handle) could not go on and is being
closed.  CODE is the C library's code."))
(defgeneric object-event-cb (object)
  (:documentation "The event-cb OBJECT (the Lisp side of a C handle) was
made with, or nil.")
  (:method ((object t)) nil))

(defmethod object-error ((object t) code)
  ;; Handles other than sockets and servers fail only when the C library
  ;; cannot queue one of their events (out of memory): it closes the
  ;; handle, and this error comes right before its `closed'.
  (let ((cb (object-event-cb object)))
    (when cb
      (catch-app-errors cb
        (run-event-cb cb (make-condition
                          'event-error
                          :code code
                          :msg (format nil "~(~a~) stopped and closed: ~a"
                                       (type-of object)
                                       (cl-async-ffi:strerror code))))))))

(defgeneric object-dns (object status results)
  (:documentation "A DNS lookup finished."))
(defgeneric object-sni (object name)
  (:documentation "A TLS server connection asks which context serves NAME."))
(defgeneric object-signal (object signum)
  (:documentation "The signal watcher OBJECT saw SIGNUM delivered."))
(defgeneric object-exit (object exit-status term-signal)
  (:documentation "The child process OBJECT ended."))
(defgeneric object-poll (object status events)
  (:documentation "The poller OBJECT's descriptor is ready (STATUS 0, EVENTS
a list of keywords) or failed (STATUS negative)."))
(defgeneric object-fs-event (object status name events)
  (:documentation "Something changed under the path the watcher OBJECT
watches."))
(defgeneric object-fs (object status path)
  (:documentation "A filesystem request finished."))
(defgeneric object-nameinfo (object status host service)
  (:documentation "A reverse DNS lookup finished."))
(defgeneric object-accept (server connection-pointer)
  (:documentation "Returns the id given to the accepted connection, or 0
to close it."))

(defmacro define-dispatch (name (&rest args) generic)
  `(defun ,name (id ,@args)
     (let ((object (find-object id)))
       (when object (,generic object ,@args)))))

(define-dispatch %on-timer () object-timer-fired)
(define-dispatch %on-notify () object-notified)
(define-dispatch %on-connect () object-connected)
(define-dispatch %on-read (pointer length) object-read)
(define-dispatch %on-written () object-written)
(define-dispatch %on-error (code) object-error)
(define-dispatch %on-sni (name) object-sni)
(define-dispatch %on-signal (signum) object-signal)
(define-dispatch %on-exit (exit-status term-signal) object-exit)
(define-dispatch %on-poll (status events) object-poll)
(define-dispatch %on-fs-event (status name events) object-fs-event)

(defun %on-closed (id)
  (let ((object (find-object id)))
    (unregister-object id)
    (when object (object-closed object))))

(defmacro define-request-dispatch (name (&rest args) generic)
  "Requests (DNS, filesystem) end with their one event: the id goes."
  `(defun ,name (id ,@args)
     (let ((object (find-object id)))
       (unregister-object id)
       (when object (,generic object ,@args)))))

(define-request-dispatch %on-dns (status results) object-dns)
(define-request-dispatch %on-fs (status path) object-fs)
(define-request-dispatch %on-nameinfo (status host service) object-nameinfo)

(defun %on-accept (server-id conn)
  (let ((server (find-object server-id)))
    (if server (object-accept server conn) 0)))

(setf cl-async-ffi:*event-handlers*
      (cl-async-ffi:make-event-handlers
       :timer (lambda (id) (%on-timer id))
       :notify (lambda (id) (%on-notify id))
       :closed (lambda (id) (%on-closed id))
       :accept (lambda (server-id conn) (%on-accept server-id conn))
       :connect (lambda (id) (%on-connect id))
       :read (lambda (id pointer length) (%on-read id pointer length))
       :written (lambda (id) (%on-written id))
       :error (lambda (id code) (%on-error id code))
       :dns (lambda (id status results) (%on-dns id status results))
       :sni (lambda (id name) (%on-sni id name))
       :signal (lambda (id signum) (%on-signal id signum))
       :exit (lambda (id status signal) (%on-exit id status signal))
       :poll (lambda (id status events) (%on-poll id status events))
       :fs-event (lambda (id status name events)
                   (%on-fs-event id status name events))
       :fs (lambda (id status path) (%on-fs id status path))
       :nameinfo (lambda (id status host service)
                   (%on-nameinfo id status host service))))
