;;;; -*- Mode: lisp; indent-tabs-mode: nil -*-
;;;; upstream-util.lisp --- upstream cl-async-util's helpers for code that
;;;; calls C through CFFI: C callbacks, stack structs, socket addresses,
;;;; addrinfo, descriptors, timevals, and the IP address scanners.
;;;;
;;;; The structs are the Linux (glibc) layouts.  Loaded after
;;;; lisp/util.lisp, in its package: it is the one file outside the FFI
;;;; package that speaks CFFI, and it lives with the bindings for that.

(in-package #:cl-async-util)

;;;# Callbacks and stack structs

(defmacro define-c-callback (name return-type (&rest args) &body body)
  "Defines both a Lisp function NAME of the ARGS' names and a CFFI callback
NAME (RETURN-TYPE, ARGS as in CFFI:DEFCALLBACK) that calls it, so the
callback's body can be called and debugged from Lisp.  Pass the callback
to C with (cffi:callback NAME)."
  (let ((names (mapcar #'first args)))
    `(progn
       (defun ,name ,names
         ,@body)
       (cffi:defcallback ,name ,return-type ,args
         (,name ,@names)))))

(defmacro with-foreign-object* ((var type &key (zero t) (initial (when zero 0)))
                                bindings &body body)
  "Runs BODY with VAR bound to a foreign struct of CFFI type (:struct TYPE)
on the stack, its bytes set to INITIAL (0 unless :zero nil), then each
binding (ACCESSOR VALUE) of BINDINGS done as (setf (ACCESSOR VAR) VALUE)."
  (let ((size (cffi:foreign-type-size (list :struct type))))
    `(cffi:with-foreign-object (,var :unsigned-char ,size)
       ,@(when initial
           `((cffi:foreign-funcall "memset" :pointer ,var :int ,initial
                                   :size ,size :pointer)))
       ,@(loop :for (accessor value) :in bindings
               :collect `(setf (,accessor ,var) ,value))
       ,@body)))

;;;# Errors

(defun error-str (errno)
  "The name of the error code ERRNO (a libuv or cl-async-ssl code, a
negative errno) as a keyword, :ECONNREFUSED or :EAI-NONAME for example;
\"(unknown error)\" for a code that is none."
  (let ((name (and (typep errno '(signed-byte 32)) (/= errno 0)
                   (cl-async-ffi:err-name errno))))
    (if (or (null name) (string= name "UNKNOWN"))
        "(unknown error)"
        (intern (substitute #\- #\_ name) :keyword))))

;;;# Socket addresses

(cffi:defcstruct (sockaddr-in :size 16)
  (family :ushort :offset 0)
  (port :uint16 :offset 2)
  (addr :uint32 :offset 4))

(cffi:defcstruct (sockaddr-in6 :size 28)
  (family :ushort :offset 0)
  (port :uint16 :offset 2)
  (flowinfo :uint32 :offset 4)
  (addr :uint8 :count 16 :offset 8)
  (scope-id :uint32 :offset 24))

(cffi:defcstruct (addrinfo :size 48)
  (flags :int :offset 0)
  (family :int :offset 4)
  (socktype :int :offset 8)
  (protocol :int :offset 12)
  (addrlen :uint32 :offset 16)
  (addr :pointer :offset 24)
  (canonname :pointer :offset 32)
  (next :pointer :offset 40))

(defconstant +sockaddr-size+ (cffi:foreign-type-size '(:struct sockaddr-in))
  "The size in bytes of a struct sockaddr_in (IPv4 socket address).")
(defconstant +sockaddr6-size+ (cffi:foreign-type-size '(:struct sockaddr-in6))
  "The size in bytes of a struct sockaddr_in6 (IPv6 socket address).")
(defconstant +addrinfo-size+ (cffi:foreign-type-size '(:struct addrinfo))
  "The size in bytes of a struct addrinfo.")

(defun ip-str-to-sockaddr (address port)
  "A freshly allocated struct sockaddr_in (ADDRESS an IPv4 address string,
or nil for 0.0.0.0) or sockaddr_in6 (an IPv6 address) for ADDRESS and
PORT.  The caller frees it with CFFI:FOREIGN-FREE (or uses
WITH-IP-TO-SOCKADDR).  A host name, or anything else, signals an error:
resolve names with DNS-LOOKUP first."
  (flet ((fill-in (size fill)
           ;; FILL is libuv's uv_ip4_addr or uv_ip6_addr (the C library
           ;; links libuv), which also takes an IPv6 address's %zone.
           (let* ((sockaddr (cffi:foreign-alloc :unsigned-char :count size))
                  (rc (funcall fill (or address "0.0.0.0") port sockaddr)))
             (unless (zerop rc)
               (cffi:foreign-free sockaddr)
               (error "ip-str-to-sockaddr: ~s is not an address the system ~
                       accepts (~a)." address (cl-async-ffi:strerror rc)))
             sockaddr)))
    (unless (typep port '(integer 0 65535))
      (error "ip-str-to-sockaddr: PORT must be an integer from 0 to 65535, ~
              not ~s." port))
    (cond ((or (null address) (ipv4-address-p address))
           (fill-in +sockaddr-size+
                    (lambda (a p out)
                      (cffi:foreign-funcall "uv_ip4_addr" :string a :int p
                                            :pointer out :int))))
          ((ipv6-address-p address)
           (fill-in +sockaddr6-size+
                    (lambda (a p out)
                      (cffi:foreign-funcall "uv_ip6_addr" :string a :int p
                                            :pointer out :int))))
          (t
           (error "ip-str-to-sockaddr: ~s is not an IPv4 or IPv6 address ~
                   (resolve host names with dns-lookup first)." address)))))

(defmacro with-ip-to-sockaddr (((bind) address port) &body body)
  "Runs BODY with BIND bound to the socket address IP-STR-TO-SOCKADDR makes
for ADDRESS and PORT, and frees it afterwards."
  `(let ((,bind (ip-str-to-sockaddr ,address ,port)))
     (unwind-protect (progn ,@body)
       (cffi:foreign-free ,bind))))

(defun addrinfo-to-string (addrinfo)
  "The first address of ADDRINFO (a pointer to a struct addrinfo, as
getaddrinfo(3) returns): (values address-string family error-string).
FAMILY is the entry's address family (+AF-INET+ or +AF-INET6+); for
another family the address is nil and ERROR-STRING says so.  A null
ai_addr signals an error."
  (let ((family (cffi:foreign-slot-value addrinfo '(:struct addrinfo) 'family))
        (sockaddr (cffi:foreign-slot-value addrinfo '(:struct addrinfo) 'addr)))
    (when (cffi:null-pointer-p sockaddr)
      (error "addrinfo-to-string: the addrinfo's ai_addr is a null pointer."))
    (let ((where (cond ((= family +af-inet+)
                        (cffi:foreign-slot-pointer sockaddr '(:struct sockaddr-in)
                                                   'addr))
                       ((= family +af-inet6+)
                        (cffi:foreign-slot-pointer sockaddr '(:struct sockaddr-in6)
                                                   'addr)))))
      (if (null where)
          (values nil family (format nil "unsupported DNS family: ~a" family))
          (cffi:with-foreign-object (buf :char 64)
            (if (cffi:null-pointer-p
                 (cffi:foreign-funcall "inet_ntop" :int family :pointer where
                                       :pointer buf :uint32 64 :pointer))
                (values nil family "inet_ntop failed on the address")
                (values (cffi:foreign-string-to-lisp buf) family nil)))))))

;;;# Descriptors

(defun set-socket-nonblocking (fd)
  "Sets the descriptor FD non-blocking (O_NONBLOCK).  Returns 0, or a
negative errno when FD is not an open descriptor."
  (cl-async-ffi:fd-set-nonblocking fd t))

(defun fd-connected-p (fd)
  "True if the descriptor FD is a connected socket: it has a peer and no
pending error (SO_ERROR is 0, as after a completed non-blocking connect).
False for a socket still connecting, refused or never connected, and for
anything that is not a socket."
  (= 1 (cl-async-ffi:fd-connected fd)))

;;;# Times

(defun split-usec-time (seconds)
  "SECONDS (a real, e.g. 3.67) as whole seconds and microseconds: (values
3 670000).  Nil for anything that is not a number."
  (when (realp seconds)
    (multiple-value-bind (whole fraction) (floor seconds)
      (values whole (floor (* 1000000 fraction))))))

(cffi:defcstruct timeval
  (sec :long)
  (usec :long))

(defmacro with-struct-timeval (var seconds &body body)
  "Runs BODY with VAR bound to a struct timeval on the stack holding
SECONDS (a real; see SPLIT-USEC-TIME)."
  (let ((sec (gensym "SEC")) (usec (gensym "USEC")))
    `(multiple-value-bind (,sec ,usec) (split-usec-time ,seconds)
       (cffi:with-foreign-object (,var '(:struct timeval))
         (setf (cffi:foreign-slot-value ,var '(:struct timeval) 'sec) (or ,sec 0)
               (cffi:foreign-slot-value ,var '(:struct timeval) 'usec) (or ,usec 0))
         ,@body))))

;;;# Address scanners

(defun make-address-scanner (predicate)
  "A scanner function of (string start end), as CL-PPCRE:SCAN accepts in
place of a regular expression: it matches when the whole of STRING from
START to END satisfies PREDICATE, returning (values START END #() #())."
  (lambda (string start end)
    (when (funcall predicate (subseq string start end))
      (values start end #() #()))))

(defparameter *ipv4-scanner* (make-address-scanner #'ipv4-address-p)
  "A scanner (see MAKE-ADDRESS-SCANNER) matching an IPv4 address;
(cl-ppcre:scan *ipv4-scanner* string) works as with upstream's.")

(defparameter *ipv6-scanner* (make-address-scanner #'ipv6-address-p)
  "A scanner (see MAKE-ADDRESS-SCANNER) matching an IPv6 address;
(cl-ppcre:scan *ipv6-scanner* string) works as with upstream's.")
