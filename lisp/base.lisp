;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; base.lisp --- the event-base, the base conditions and the specials.

(in-package #:cl-async-base)

(define-condition event-info ()
  ()
  (:report (lambda (c s)
             (print-unreadable-object (c s :type t :identity t))))
  (:documentation "The base of every condition cl-async passes to an
event-cb (informational events and errors alike)."))

(define-condition event-error (event-info error)
  ((code :initarg :code :reader event-errcode :initform 0
         :documentation "A numeric code (a negative errno for system
errors), or 0.")
   (msg :initarg :msg :reader event-errmsg :initform nil
        :documentation "A text saying what went wrong, or nil."))
  (:report (lambda (c s)
             (format s "~a~@[ (code ~a)~]: ~a"
                     (type-of c)
                     (let ((code (event-errcode c)))
                       (and (integerp code) (/= code 0) code))
                     (or (event-errmsg c) "no details"))))
  (:documentation "An error in an asynchronous operation.  EVENT-ERRCODE
gives the code, EVENT-ERRMSG the text."))

(defvar *event-base* nil
  "The EVENT-BASE of the loop running in this thread, or nil.")

(defvar *event-base-next-id* 0
  "The id given to the next event-base.")

(defvar *enable-threading* nil
  "Kept for compatibility.  cl-async is single-threaded per loop; only
TRIGGER-NOTIFIER may be called from another thread.")

(defvar *safe-sldb-quit-restart* nil
  "If true, SLIME's quit restart inside a callback aborts the callback
(ABORT-CALLBACK) instead of exiting the event loop.")

(defvar *buffer-writes* t
  "If true (the default), writes made during one pass of the event loop are
coalesced and sent together when the pass ends: several writes become one
system call and one write-cb.  If nil, each write is sent at once.  Bound
per loop by START-EVENT-LOOP.")

(defvar *buffer-size* (* 1024 64)
  "Upstream's read buffer size (64 KiB).  Kept for compatibility; the C
library reads into its own pooled buffers: a plain TCP read event carries
up to 64 KiB, a TLS read event up to 256 KiB of decrypted data.")

(defvar *output-buffer* nil
  "Kept for compatibility (upstream's static output buffer); unused.")
(defvar *input-buffer* nil
  "Kept for compatibility (upstream's static input buffer); unused.")

(defvar *data-registry* nil
  "The current loop's data registry (a hash table), as in upstream.")
(defvar *function-registry* nil
  "The current loop's callback registry (a hash table), as in upstream.")

(defclass event-base ()
  ((c :accessor event-base-c :initarg :c :initform nil
      :documentation "The C loop (a foreign pointer).")
   (id :accessor event-base-id :initarg :id :initform nil
       :documentation "This loop's number.")
   (function-registry :accessor event-base-function-registry
                      :initarg :function-registry
                      :initform (make-hash-table :test 'eql)
                      :documentation "Upstream's callback registry.")
   (data-registry :accessor event-base-data-registry
                  :initarg :data-registry
                  :initform (make-hash-table :test 'eql)
                  :documentation "Upstream's data registry.")
   (exit-functions :accessor event-base-exit-functions
                   :initarg :exit-functions :initform nil
                   :documentation "Functions run when the loop exits,
last added first.")
   (signal-handlers :accessor event-base-signal-handlers
                    :initarg :signal-handlers :initform nil
                    :documentation "The signal numbers this loop has a
handler for (see SIGNAL-HANDLER).")
   (dns-base :accessor event-base-dns-base :initarg :dns-base :initform nil
             :documentation "Kept for compatibility.")
   (dns-ref-count :accessor event-base-dns-ref-count
                  :initarg :dns-ref-count :initform 0
                  :documentation "DNS lookups in flight.")
   (catch-app-errors :accessor event-base-catch-app-errors
                     :initarg :catch-app-errors :initform nil
                     :documentation "T or a function: errors in callbacks
are caught and handed to an event-cb, the function, or HANDLE-ERROR.")
   (send-errors-to-eventcb :accessor event-base-send-errors-to-eventcb
                           :initarg :send-errors-to-eventcb :initform t
                           :documentation "With catch-app-errors, send
caught errors to the operation's event-cb when it has one.")
   (lock :accessor event-base-lock :initarg :lock
         :initform (bt:make-lock "event-base")
         :documentation "A lock for cross-thread state.")
   (num-connections-in :accessor event-base-num-connections-in :initform 0
                       :documentation "Kept for compatibility; STATS reads
the C counters.")
   (num-connections-out :accessor event-base-num-connections-out
                        :initform 0
                        :documentation "Kept for compatibility."))
  (:documentation "A running event loop and everything it tracks."))

(setf (documentation 'event-errcode 'function)
      "The numeric code of an EVENT-ERROR (a negative errno, or 0)."
      (documentation 'event-errmsg 'function)
      "The text of an EVENT-ERROR: what went wrong (or nil)."
      (documentation 'event-base-c 'function)
      "The C loop of an EVENT-BASE (a foreign pointer)."
      (documentation 'event-base-id 'function)
      "The number of an EVENT-BASE."
      (documentation 'event-base-function-registry 'function)
      "Upstream's callback registry of an EVENT-BASE."
      (documentation 'event-base-data-registry 'function)
      "Upstream's data registry of an EVENT-BASE."
      (documentation 'event-base-exit-functions 'function)
      "Functions run when the loop exits, last added first."
      (documentation 'event-base-signal-handlers 'function)
      "The signal numbers the loop has a live handler for (SIGNAL-HANDLER
adds one, FREE-SIGNAL-HANDLER removes it), most recent first."
      (documentation 'event-base-dns-base 'function)
      "Kept for compatibility (DNS runs in the C library)."
      (documentation 'event-base-dns-ref-count 'function)
      "Kept for compatibility."
      (documentation 'event-base-catch-app-errors 'function)
      "The loop's :catch-app-errors setting."
      (documentation 'event-base-send-errors-to-eventcb 'function)
      "The loop's :send-errors-to-eventcb setting."
      (documentation 'event-base-lock 'function)
      "A lock of the event base (used with *enable-threading*)."
      (documentation 'event-base-num-connections-in 'function)
      "Kept for compatibility; STATS counts connections."
      (documentation 'event-base-num-connections-out 'function)
      "Kept for compatibility; STATS counts connections.")
