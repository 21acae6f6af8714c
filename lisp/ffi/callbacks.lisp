;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; callbacks.lisp --- the callbacks C calls with events, and the
;;;; EVENT-HANDLERS structure through which they reach the core.
;;;;
;;;; Events are dispatched by casl_loop_run outside uv_run, through the
;;;; callbacks below, which hand them to the functions in *EVENT-HANDLERS*
;;;; (set by the core).  Callback pointers are handed to C each time a loop
;;;; is created (LOOP-NEW, in loop.lisp), so a saved image works after a
;;;; restart.

(in-package #:cl-async-ffi)

;;;# Interrupts inside callbacks

(defvar *callback-interrupts* nil
  "Whether callbacks may enable interrupts: the caller's
SB-SYS:*ALLOW-WITH-INTERRUPTS*, captured by LOOP-RUN-ONCE before it defers
interrupts.")

;;; Callbacks do all their work, allocation included, inside
;;; WITH-CALLBACK-INTERRUPTS.  Outside it they run with interrupts deferred
;;; and *ALLOW-WITH-INTERRUPTS* nil, a state in which SBCL's allocator may
;;; collect garbage safely; a collection triggered with interrupts deferred
;;; but allowed (the state ALLOW-WITH-INTERRUPTS would leave around the C
;;; call) lets a signal arrive during POST-GC, which SBCL 2.2 treats as a
;;; fatal error ("pending handler changed in gc").
(defmacro with-callback-interrupts (&body body)
  "Runs BODY (a callback from C) with interrupts enabled again, if the
code that ran the loop allowed them."
  `(let ((sb-sys:*allow-with-interrupts* *callback-interrupts*))
     (sb-sys:with-interrupts ,@body)))

;;;# Event dispatch

(defstruct event-handlers
  "Functions the core installs to receive events (all called on the loop
thread, from casl_loop_run)."
  (timer nil :type (or null function))
  (notify nil :type (or null function))
  (closed nil :type (or null function))
  (accept nil :type (or null function))
  (connect nil :type (or null function))
  (read nil :type (or null function))
  (written nil :type (or null function))
  (error nil :type (or null function))
  (dns nil :type (or null function))
  (sni nil :type (or null function))
  (signal nil :type (or null function))
  (exit nil :type (or null function))
  (poll nil :type (or null function))
  (fs-event nil :type (or null function))
  (fs nil :type (or null function))
  (nameinfo nil :type (or null function)))

(setf (documentation 'make-event-handlers 'function)
      "Makes the EVENT-HANDLERS the core installs in *EVENT-HANDLERS*, one
function per event kind (:timer :notify :closed :accept :connect :read
:written :error :dns :sni :signal :exit :poll :fs-event :fs :nameinfo).")

(defvar *event-handlers* nil
  "The EVENT-HANDLERS that receive every event; set by the core at load.")

(declaim (type (or null event-handlers) *event-handlers*))

(cffi:defcallback %on-timer :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-timer *event-handlers*) id)))

(cffi:defcallback %on-notify :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-notify *event-handlers*) id)))

(cffi:defcallback %on-closed :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-closed *event-handlers*) id)))

(cffi:defcallback %on-accept :int64 ((server-id :int64) (conn :pointer))
  (with-callback-interrupts
    (funcall (event-handlers-accept *event-handlers*) server-id conn)))

(cffi:defcallback %on-connect :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-connect *event-handlers*) id)))

;;; Received bytes reach the core as a pointer and a length, valid during
;;; the call only: the socket copies them where it wants them (a fresh
;;; vector, a reused one, its stream's buffer), with the two functions
;;; below.
(cffi:defcallback %on-read :void ((id :int64) (buf :pointer) (len :size))
  (with-callback-interrupts
    (funcall (event-handlers-read *event-handlers*) id buf len)))

(defun copy-foreign-octets (pointer length octets start)
  "Copies the LENGTH bytes at POINTER (the pointer of a read event) into
the simple octet vector OCTETS from index START; returns OCTETS."
  (declare (type (simple-array (unsigned-byte 8) (*)) octets)
           (type (and fixnum unsigned-byte) length start))
  (unless (<= (+ start length) (length octets))
    (error "copy-foreign-octets: ~d bytes do not fit a vector of ~d from ~d."
           length (length octets) start))
  (cffi:with-pointer-to-vector-data (dst octets)
    (%memcpy (cffi:inc-pointer dst start) pointer length))
  octets)

(defun foreign-octets (pointer length)
  "A fresh simple octet vector holding the LENGTH bytes at POINTER."
  (copy-foreign-octets pointer length
                       (make-array length :element-type '(unsigned-byte 8)) 0))

(cffi:defcallback %on-written :void ((id :int64))
  (with-callback-interrupts
    (funcall (event-handlers-written *event-handlers*) id)))

(cffi:defcallback %on-error :void ((id :int64) (code :int))
  (with-callback-interrupts
    (funcall (event-handlers-error *event-handlers*) id code)))

(cffi:defcallback %on-dns :void ((id :int64) (status :int) (n :int)
                                 (addrs :pointer) (families :pointer))
  (with-callback-interrupts
    (let ((results (loop :for i :below n
                         :collect (cons (cffi:mem-aref addrs :string i)
                                        (cffi:mem-aref families :int i)))))
      (funcall (event-handlers-dns *event-handlers*) id status results))))

(cffi:defcallback %on-sni :void ((id :int64) (name :pointer))
  (with-callback-interrupts
    (let ((name (cffi:foreign-string-to-lisp name)))
      (funcall (event-handlers-sni *event-handlers*) id
               (if (zerop (length name)) nil name)))))

(defun string-or-nil (pointer)
  (if (cffi:null-pointer-p pointer) nil (cffi:foreign-string-to-lisp pointer)))

(cffi:defcallback %on-signal :void ((id :int64) (signum :int))
  (with-callback-interrupts
    (funcall (event-handlers-signal *event-handlers*) id signum)))

(cffi:defcallback %on-exit :void ((id :int64) (exit-status :int64)
                                  (term-signal :int))
  (with-callback-interrupts
    (funcall (event-handlers-exit *event-handlers*) id exit-status term-signal)))

(cffi:defcallback %on-poll :void ((id :int64) (status :int) (events :int))
  (with-callback-interrupts
    (funcall (event-handlers-poll *event-handlers*) id status events)))

(cffi:defcallback %on-fs-event :void ((id :int64) (status :int) (name :pointer)
                                      (events :int))
  (with-callback-interrupts
    (funcall (event-handlers-fs-event *event-handlers*) id status
             (string-or-nil name) events)))

(cffi:defcallback %on-fs :void ((id :int64) (status :int) (path :pointer))
  (with-callback-interrupts
    (funcall (event-handlers-fs *event-handlers*) id status
             (string-or-nil path))))

(cffi:defcallback %on-nameinfo :void ((id :int64) (status :int) (host :pointer)
                                      (service :pointer))
  (with-callback-interrupts
    (funcall (event-handlers-nameinfo *event-handlers*) id status
             (string-or-nil host) (string-or-nil service))))

;;; The layout of casl_callbacks, in the order of the C declaration.
(cffi:defcstruct casl-callbacks
  (timer :pointer) (notify :pointer) (closed :pointer) (accept :pointer)
  (connect :pointer) (read :pointer) (written :pointer) (error :pointer)
  (dns :pointer) (sni :pointer) (signal :pointer) (exit :pointer)
  (poll :pointer) (fs-event :pointer) (fs :pointer) (nameinfo :pointer))
