/*
 * A second module for the tests: CALLER.CALL <flags> <command> [arg ...]
 * runs the command through RedisModule_Call, as any module may call
 * cachekit's commands. <flags> are RM_Call format flags after "v"
 * ("C" checks ACL as the caller, "-" for none).
 *
 * Load arguments, each for one test of how cachekit lives beside others:
 *   delete-on-ratelimit  subscribes to string keyspace events and deletes
 *                        the key on each "ratelimit" event (a subscriber
 *                        that writes from its callback);
 *   take-cache-key       also creates a command named cache.key, so that
 *                        loading cachekit afterwards fails.
 *
 * Self-contained: it fetches the few API functions it uses by name, the
 * way every module does when it starts, so it needs no header.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct Ctx Ctx;
typedef struct Str Str;
typedef struct CallReply CallReply;
typedef int (*CmdFunc)(Ctx *, Str **, int);

static int (*GetApi)(const char *, void *);
static int (*SetModuleAttribs)(Ctx *, const char *, int, int);
static int (*CreateCommand)(Ctx *, const char *, CmdFunc, const char *, int, int, int);
static const char *(*StringPtrLen)(const Str *, size_t *);
static CallReply *(*Call)(Ctx *, const char *, const char *, ...);
static int (*ReplyWithCallReply)(Ctx *, CallReply *);
static void (*FreeCallReply)(CallReply *);
static int (*ReplyWithError)(Ctx *, const char *);
static int (*WrongArity)(Ctx *);
static int (*SubscribeToKeyspaceEvents)(Ctx *, int, int (*)(Ctx *, int, const char *, Str *));
static int (*ReplyWithSimpleString)(Ctx *, const char *);

#define NOTIFY_STRING (1 << 3)

static int delete_on_ratelimit(Ctx *ctx, int type, const char *event, Str *key) {
    (void)type;
    if (strcmp(event, "ratelimit") == 0) {
        CallReply *reply = Call(ctx, "DEL", "s", key);
        if (reply != NULL) FreeCallReply(reply);
    }
    return 0;
}

static int taken_command(Ctx *ctx, Str **argv, int argc) {
    (void)argv;
    (void)argc;
    return ReplyWithSimpleString(ctx, "taken");
}

static int call_command(Ctx *ctx, Str **argv, int argc) {
    if (argc < 3) return WrongArity(ctx);
    size_t len;
    const char *flags = StringPtrLen(argv[1], &len);
    char fmt[16];
    snprintf(fmt, sizeof fmt, "v%s", strcmp(flags, "-") == 0 ? "" : flags);
    const char *name = StringPtrLen(argv[2], &len);
    CallReply *reply = Call(ctx, name, fmt, argv + 3, (size_t)(argc - 3));
    if (reply == NULL) return ReplyWithError(ctx, "ERR RedisModule_Call failed");
    ReplyWithCallReply(ctx, reply);
    FreeCallReply(reply);
    return 0;
}

#define API(var, name) if (GetApi(name, (void *)&var) != 0) return 1
int RedisModule_OnLoad(Ctx *ctx, Str **argv, int argc) {
    /* The first member of every module context is the API lookup function. */
    GetApi = *(int (**)(const char *, void *))ctx;
    API(SetModuleAttribs, "RedisModule_SetModuleAttribs");
    API(CreateCommand, "RedisModule_CreateCommand");
    API(StringPtrLen, "RedisModule_StringPtrLen");
    API(Call, "RedisModule_Call");
    API(ReplyWithCallReply, "RedisModule_ReplyWithCallReply");
    API(FreeCallReply, "RedisModule_FreeCallReply");
    API(ReplyWithError, "RedisModule_ReplyWithError");
    API(WrongArity, "RedisModule_WrongArity");
    API(SubscribeToKeyspaceEvents, "RedisModule_SubscribeToKeyspaceEvents");
    API(ReplyWithSimpleString, "RedisModule_ReplyWithSimpleString");
    SetModuleAttribs(ctx, "caller", 1, 1);
    if (CreateCommand(ctx, "caller.call", call_command, "write", 0, 0, 0) != 0) return 1;
    for (int i = 0; i < argc; i++) {
        size_t len;
        const char *arg = StringPtrLen(argv[i], &len);
        if (strcmp(arg, "delete-on-ratelimit") == 0) {
            if (SubscribeToKeyspaceEvents(ctx, NOTIFY_STRING, delete_on_ratelimit) != 0) return 1;
        } else if (strcmp(arg, "take-cache-key") == 0) {
            if (CreateCommand(ctx, "cache.key", taken_command, "readonly", 0, 0, 0) != 0) return 1;
        } else {
            return 1;
        }
    }
    return 0;
}
