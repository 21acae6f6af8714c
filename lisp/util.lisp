;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; util.lisp --- octets, addresses, and the error handling of callbacks.

(in-package #:cl-async-util)

;;;# Octets

(deftype octet () "A byte." '(unsigned-byte 8))
(deftype octet-vector () "A simple vector of bytes." '(simple-array octet (*)))
(deftype bytes-or-string () "Data a socket can write." '(or octet-vector string))
(deftype callback () "A callback designator." '(or null function symbol))

(defun bytes (vector)
  "Converts any vector or string to a vector of octets (strings are encoded
as UTF-8).  Useful for writing raw data with write-socket-data."
  (etypecase vector
    (string (babel:string-to-octets vector :encoding :utf-8))
    (vector (coerce vector '(vector octet)))))

(defun make-buffer (&optional data)
  "An adjustable octet buffer, holding DATA (an octet vector) if given."
  (let ((buffer (make-array (if data (length data) 64)
                            :element-type 'octet :adjustable t
                            :fill-pointer 0)))
    (when data
      (write-to-buffer data buffer))
    buffer))

(defun write-to-buffer (seq buffer &optional start end)
  "Appends SEQ[START, END) (octets) to a buffer made by MAKE-BUFFER."
  (let* ((start (or start 0))
         (end (or end (length seq)))
         (old (fill-pointer buffer))
         (new (+ old (- end start))))
    (when (> new (array-dimension buffer 0))
      (setf buffer (adjust-array buffer (max new (* 2 (array-dimension buffer 0))))))
    (setf (fill-pointer buffer) new)
    (replace buffer seq :start1 old :start2 start :end2 end)
    buffer))

(defun buffer-output (buffer)
  "The contents of a buffer made by MAKE-BUFFER, as a fresh octet vector."
  (let ((out (make-array (length buffer) :element-type 'octet)))
    (replace out buffer)
    out))

(defun do-chunk-data (data buffer write-cb &key start end new-buffer)
  "Splits DATA (a vector, or a binary input stream) into pieces of at most
(length BUFFER) octets, copies each into BUFFER (or a fresh vector with
NEW-BUFFER) and calls WRITE-CB with that vector and the piece's length."
  (let ((size (length buffer)))
    (flet ((target () (if new-buffer (make-array size :element-type 'octet) buffer)))
      (if (streamp data)
          (loop :for buf := (target)
                :for n := (read-sequence buf data)
                :while (plusp n)
                :do (funcall write-cb buf n))
          (loop :with end := (min (or end (length data)) (length data))
                :for i :from (or start 0) :below end :by size
                :for n := (min size (- end i))
                :for buf := (target)
                :do (replace buf data :start2 i :end2 (+ i n))
                    (funcall write-cb buf n))))))

(defun append-array (arr1 arr2)
  "A fresh array holding ARR1 followed by ARR2."
  (let ((arr (make-array (+ (length arr1) (length arr2))
                         :element-type (array-element-type arr1))))
    (replace arr arr1)
    (replace arr arr2 :start1 (length arr1))
    arr))

;;;# Addresses

(defconstant +af-inet+ 2 "IPv4 address family.")
(defconstant +af-inet6+ 10 "IPv6 address family (Linux value).")
(defconstant +af-unspec+ 0 "Any address family.")
(defconstant +af-unix+ 1 "Unix domain sockets.")

(defun ipv4-address-p (addr)
  "True if ADDR is a dotted-quad IPv4 address (each part 0-255)."
  (and (stringp addr)
       (let ((parts (split-string addr #\.)))
         (and (= (length parts) 4)
              (every (lambda (p)
                       (and (<= 1 (length p) 3)
                            (every #'digit-char-p p)
                            (<= (parse-integer p) 255)))
                     parts)))))

(defun ipv6-address-p (addr)
  "True if ADDR is an IPv6 address (compressed forms, an embedded IPv4
tail and a %zone suffix allowed)."
  (and (stringp addr)
       (let* ((addr (string-trim " " addr))
              (zone (position #\% addr))
              (addr (if zone (subseq addr 0 zone) addr)))
         (when (and zone (= zone (1- (length addr)))) (return-from ipv6-address-p nil))
         (let* ((double (search "::" addr))
                (head (if double (subseq addr 0 double) addr))
                (tail (if double (subseq addr (+ double 2)) "")))
           (when (and double (search "::" tail))
             (return-from ipv6-address-p nil))
           (flet ((groups (s)
                    (if (string= s "") '() (split-string s #\:)))
                  (hex-group-p (g)
                    (and (<= 1 (length g) 4)
                         (every (lambda (c) (digit-char-p c 16)) g))))
             (let* ((hg (groups head))
                    (tg (groups tail))
                    (all (append hg tg))
                    (last (car (last all)))
                    (v4 (and last (find #\. last) (ipv4-address-p last)))
                    (hex (if v4 (butlast all) all))
                    (count (+ (length hex) (if v4 2 0))))
               (and (every #'hex-group-p hex)
                    (or (not last) (not (find #\. last)) v4)
                    (if double (< count 8) (= count 8)))))))))

(defun ip-address-p (addr)
  "True if ADDR is an IPv4 or IPv6 address."
  (or (ipv4-address-p addr) (ipv6-address-p addr)))

(defun split-string (string char)
  (loop :for start := 0 :then (1+ pos)
        :for pos := (position char string :start start)
        :collect (subseq string start pos)
        :while pos))

;;;# Locks and upstream's registries

(defmacro with-lock (&body body)
  "Runs BODY holding the current event loop's lock when *ENABLE-THREADING*
is true."
  `(if *enable-threading*
       (bt:with-lock-held ((event-base-lock *event-base*))
         ,@body)
       (progn ,@body)))

(defvar *data-pointer-counter* 0)

(defun create-data-pointer ()
  "A fresh key to attach data and callbacks to (upstream allocated a byte
of foreign memory; a unique integer serves the same purpose here)."
  (with-lock (incf *data-pointer-counter*)))

(defun make-pointer-eql-able (pointer)
  "A key for POINTER that is EQL to itself (a foreign pointer's address)."
  (cond ((null pointer) nil)
        ((integerp pointer) pointer)
        ((typep pointer 'sb-sys:system-area-pointer)
         (cl-async-ffi:pointer-address pointer))
        (t pointer)))

(defun save-callbacks (pointer callbacks)
  "Stores CALLBACKS (a list or one function) under POINTER."
  (with-lock
    (setf (gethash (make-pointer-eql-able pointer) *function-registry*)
          (if (listp callbacks) callbacks (list callbacks)))))

(defun get-callbacks (pointer)
  "The callbacks stored under POINTER."
  (with-lock
    (when *function-registry*
      (values (gethash (make-pointer-eql-able pointer) *function-registry*)))))

(defun clear-callbacks (pointer)
  "Forgets the callbacks stored under POINTER."
  (with-lock
    (when *function-registry*
      (remhash (make-pointer-eql-able pointer) *function-registry*))))

(defun attach-data-to-pointer (pointer data)
  "Stores DATA under POINTER."
  (with-lock
    (setf (gethash (make-pointer-eql-able pointer) *data-registry*) data)))

(defun deref-data-from-pointer (pointer)
  "The data stored under POINTER."
  (with-lock
    (when (and pointer *data-registry*)
      (values (gethash (make-pointer-eql-able pointer) *data-registry*)))))

(defun clear-pointer-data (pointer)
  "Forgets the data stored under POINTER."
  (with-lock
    (when (and pointer *data-registry*)
      (remhash (make-pointer-eql-able pointer) *data-registry*))))

(defun free-pointer-data (pointer &key preserve-pointer)
  "Forgets the data and callbacks stored under POINTER."
  (declare (ignore preserve-pointer))
  (when pointer
    (clear-callbacks pointer)
    (clear-pointer-data pointer)))

(defmacro define-condition-alias (alias name)
  "Makes ALIAS name the same condition class as NAME, so a handler for
either matches conditions made with either."
  `(eval-when (:compile-toplevel :load-toplevel :execute)
     (setf (find-class ',alias) (find-class ',name))))

;;;# Errors in callbacks

(defvar *send-errors-to-eventcb* t
  "The default of START-EVENT-LOOP's :send-errors-to-eventcb: with
:catch-app-errors, caught errors go to the operation's event-cb.")

(defvar *passthrough-errors* '()
  "Types of errors that cl-async's error catching never intercepts (for
example a test framework's check failures).")

(defun passthrough-error-p (e)
  "True if E is of a type in *PASSTHROUGH-ERRORS*."
  (loop :for type :in *passthrough-errors* :thereis (typep e type)))

(defgeneric handle-error (error)
  (:documentation "Handles an error caught in a callback when the loop runs
with :catch-app-errors t and no event-cb takes it.  The default method
prints a warning to *ERROR-OUTPUT*; define methods to do more."))

(defmethod handle-error ((error t))
  (format *error-output* "~&;; cl-async: error in a callback: ~a~%" error))

(defvar *evcb-err* nil
  "Errors already handed to an event-cb during the current callback.")

(defun exit-loop-now ()
  (when (and *event-base* (event-base-c *event-base*))
    (cl-async-ffi:loop-stop (event-base-c *event-base*))))

(defvar *sldb-quit-symbol* :unknown
  "SWANK's *SLDB-QUIT-RESTART* symbol, or nil without SWANK; looked up when
a loop starts (START-EVENT-LOOP binds it), not on every callback.")

(defun find-sldb-quit-symbol ()
  "SWANK's *SLDB-QUIT-RESTART* symbol if SWANK is loaded, else nil."
  (let ((swank (find-package "SWANK")))
    (and swank (find-symbol "*SLDB-QUIT-RESTART*" swank))))

(defun call-with-sldb-quit-restart (thunk)
  "Calls THUNK with SWANK's debugger quit restart, when SWANK is loaded, set
to ABORT-CALLBACK if *SAFE-SLDB-QUIT-RESTART* is true, else EXIT-EVENT-LOOP."
  (let ((sym (if (eq *sldb-quit-symbol* :unknown)
                 (find-sldb-quit-symbol)
                 *sldb-quit-symbol*)))
    (if (and sym (boundp sym))
        (progv (list sym)
            (list (if *safe-sldb-quit-restart* 'abort-callback 'exit-event-loop))
          (funcall thunk))
        (funcall thunk))))

(defun call-with-callback-restarts (thunk &key eventcb-fn continue-fn
                                             (abort-restart-description
                                              "Abort this cl-async callback."))
  "Calls THUNK with restarts around it:
  CONTINUE             skip the rest of the callback, keep the loop running;
  SEND-TO-EVENTCB      hand the error to the operation's event-cb (EVENTCB-FN);
  CONTINUE-EVENT-LOOP  hand it to the loop's error handler (CONTINUE-FN);
  ABORT-CALLBACK       skip the rest of the callback;
  EXIT-EVENT-LOOP      stop the event loop.
With SWANK loaded, the debugger's quit restart becomes ABORT-CALLBACK when
*SAFE-SLDB-QUIT-RESTART* is true, EXIT-EVENT-LOOP otherwise."
  (restart-case (call-with-sldb-quit-restart thunk)
    (continue ()
      :report "Skip the rest of this callback and keep the event loop running."
      (values))
    (send-to-eventcb ()
      :report "Continue the event loop, passing the error to the event-cb."
      :test (lambda (c) (declare (ignore c)) eventcb-fn)
      (funcall eventcb-fn)
      (values))
    (continue-event-loop ()
      :report "Continue the event loop, passing the error to the default handler."
      (when continue-fn (funcall continue-fn))
      (values))
    (abort-callback ()
      :report (lambda (s) (write-string abort-restart-description s))
      (values))
    (exit-event-loop ()
      :report "Exit the current event loop."
      (exit-loop-now)
      (values))))

(defun app-error-handler ()
  "The loop's catch-app-errors function, or HANDLE-ERROR."
  (let ((c (event-base-catch-app-errors *event-base*)))
    (cond ((functionp c) c)
          ((and c (symbolp c) (not (eq c t)) (fboundp c)) (symbol-function c))
          (t #'handle-error))))

(defun resolve-event-cb (event-cb)
  (cond ((functionp event-cb) event-cb)
        ((null event-cb) nil)
        ((and (symbolp event-cb) (fboundp event-cb)) (symbol-function event-cb))
        (t (error "cl-async: invalid event-cb ~s: pass a function or nil."
                  event-cb))))

(defun offer-callback-restarts (err evcb abort)
  "Re-signals ERR, raised in a callback while the loop does not catch app
errors, with the callback restarts established (see
CALL-WITH-CALLBACK-RESTARTS): outer handlers and the debugger decide.  A
restart that skips the callback calls ABORT, which leaves the callback."
  (restart-case (call-with-sldb-quit-restart (lambda () (error err)))
    (continue ()
      :report "Skip the rest of this callback and keep the event loop running."
      (funcall abort))
    (send-to-eventcb ()
      :report "Continue the event loop, passing the error to the event-cb."
      :test (lambda (c) (declare (ignore c)) evcb)
      (funcall evcb err)
      (funcall abort))
    (continue-event-loop ()
      :report "Continue the event loop, passing the error to the default handler."
      (funcall (app-error-handler) err)
      (funcall abort))
    (abort-callback ()
      :report "Abort this cl-async callback."
      (funcall abort))
    (exit-event-loop ()
      :report "Exit the current event loop."
      (exit-loop-now)
      (funcall abort))))

(defmacro catch-app-errors (event-cb &body body)
  "Runs BODY, the body of a callback whose operation has EVENT-CB.  When the
loop runs with :catch-app-errors, an error escaping BODY abandons it and
goes to EVENT-CB (with :send-errors-to-eventcb, the default), or else to the
loop's catch-app-errors function or HANDLE-ERROR.  Otherwise the error is
signalled on, with the restarts of CALL-WITH-CALLBACK-RESTARTS (CONTINUE
skips the rest of the callback).  The restarts are made only when an error
happens: a callback that does not fail conses nothing here."
  (let ((evcb (gensym "EVCB")) (blk (gensym "BLK")) (err (gensym "ERR")))
    `(let ((*evcb-err* '())
           (,evcb (resolve-event-cb ,event-cb)))
       (block ,blk
         (flet ((abort-it () (return-from ,blk nil)))
           (declare (dynamic-extent #'abort-it))
           (flet ((handler (,err)
                    (unless (or (member ,err *evcb-err*)
                                (passthrough-error-p ,err))
                      (cond ((not (event-base-catch-app-errors *event-base*))
                             (offer-callback-restarts ,err ,evcb #'abort-it))
                            ((and ,evcb
                                  (event-base-send-errors-to-eventcb *event-base*))
                             (funcall ,evcb ,err)
                             (abort-it))
                            (t
                             (funcall (app-error-handler) ,err)
                             (abort-it))))))
             (declare (dynamic-extent #'handler))
             (handler-bind ((error #'handler))
               ,@body)))))))

(defun run-event-cb (event-cb &rest args)
  "Calls EVENT-CB with ARGS.  Inside CATCH-APP-ERRORS, an error escaping
EVENT-CB is remembered so it is not handed to an event-cb a second time."
  (handler-bind ((error (lambda (err) (pushnew err *evcb-err*))))
    (apply event-cb args)))
